// The dataplane port is the only way to the kernel's tools: no argv of a network tool (ip,
// nft, iptables*, conntrack, ipvsadm, ss, tcpdump...) outside src/dataplane. Components read
// the kernel through the port's typed operations; Netns.exec is for what a user asks to run.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..');
const TOOLS = ['ip', 'bridge', 'nft', 'iptables', 'ip6tables', 'conntrack', 'ipvsadm', 'ss', 'tcpdump', 'ipset', 'ethtool', 'tc', 'sysctl'];
// What follows a tool in an argv: an option, or one of its subcommands.
const SUBCOMMANDS = ['list', 'monitor', 'route', 'addr', 'address', 'link', 'neigh', 'fdb', 'netns', 'rule', 'add', 'del', 'delete', 'flush', 'get', 'show', 'restore', 'save', 'create', 'destroy', 'swap', 'replace'];
// An array literal whose first element is a tool (or one of its -save/-restore/-legacy forms) and whose second, if any, is an option or subcommand.
const ARGV = new RegExp(String.raw`\[\s*(['"\`])((?:${TOOLS.join('|')})(?:-[a-z]+)*)\1\s*(?:(\])|,\s*(['"\`])(?:-|(?:${SUBCOMMANDS.join('|')})\4))`, 'g');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

export function toolArgvs(text: string): string[] {
  // Alone in its array, only a tool's -save/-restore form is an argv (['ip'] is a patch merge key).
  return [...text.matchAll(ARGV)].filter((m) => !m[3] || m[2]!.includes('-')).map((m) => m[2]!);
}

test('the check finds a tool argv, and only that', () => {
  assert.deepEqual(toolArgvs("await ns.exec(['conntrack', '-L'])"), ['conntrack']);
  assert.deepEqual(toolArgvs('run(["iptables-legacy-save", "-c"])'), ['iptables-legacy-save']);
  assert.deepEqual(toolArgvs("['ip', '-json', 'route']"), ['ip']);
  assert.deepEqual(toolArgvs("['nft', 'list', 'ruleset'] ns.exec(['iptables-legacy-save'])"), ['nft', 'iptables-legacy-save']);
  assert.deepEqual(toolArgvs("['curl', '-s'] ['ipvs', 1] ['iptables', 'nftables', 'ipvs'] ['iptables', mode] ['bridge', 'segment']"), []);
});

test('no network tool argv outside src/dataplane (the port reads the kernel; exec runs only what a user types)', () => {
  const found: string[] = [];
  for (const file of sources(join(ROOT, 'src'))) {
    const rel = relative(ROOT, file);
    if (rel.startsWith('src/dataplane/')) continue;
    for (const tool of toolArgvs(readFileSync(file, 'utf8'))) found.push(`${rel}: ${tool}`);
  }
  assert.deepEqual(found, [], 'read the kernel through a typed operation of src/dataplane/port.ts instead');
});
