// Who may run what, where state lives, and what a host must have: the pure decisions behind
// a new user's first commands (no root, no kernel).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { typed } from '../src/cli/cluster.ts';
import { DEFAULT_SPEC, type ClusterSpec } from '../src/cluster/plan.ts';
import { missingOnHost, toolsOnPath, type HostFacts } from '../src/lifecycle/preflight.ts';
import { chooseKernel, hasHostNetworkCapabilities } from '../src/lifecycle/privileges.ts';
import { stateRoot } from '../src/state/paths.ts';
import { PermissionDenied } from '../src/supervisor/supervisor.ts';

test('the kernel a cluster runs in: the host for root, its own for an ordinary user (said), refusals naming the way out', () => {
  assert.deepEqual(chooseKernel(undefined, true, undefined), { kernel: 'host' });
  assert.deepEqual(chooseKernel('uml', true, undefined), { kernel: 'uml' });
  assert.deepEqual(chooseKernel('uml', false, undefined), { kernel: 'uml' });
  const auto = chooseKernel(undefined, false, undefined);
  assert.equal(auto.kernel, 'uml');
  assert.match(auto.note!, /not root: the cluster runs in a kernel of its own/);
  assert.throws(() => chooseKernel('host', false, undefined), (e: Error) => e instanceof PermissionDenied && /^permission denied: .*needs root.*sudo kubewire up.*--kernel uml/.test(e.message));
  assert.throws(() => chooseKernel(undefined, false, '/usr/bin/linux.uml is missing'), /permission denied: .*user-mode Linux.*not installed.*linux\.uml is missing/);
  assert.throws(() => chooseKernel('kvm', true, undefined), /--kernel "kvm": must be host or uml/);
});

test('capabilities that stand for root on the host kernel: CAP_NET_ADMIN and CAP_SYS_ADMIN, both', () => {
  assert.equal(hasHostNetworkCapabilities(0x000001ffffffffffn), true, "root's full set");
  assert.equal(hasHostNetworkCapabilities((1n << 12n) | (1n << 21n)), true);
  assert.equal(hasHostNetworkCapabilities(1n << 12n), false, 'CAP_NET_ADMIN alone cannot make namespaces');
  assert.equal(hasHostNetworkCapabilities(0n), false);
});

test("the state directory: KUBEWIRE_STATE_DIR, else root's /var/lib/kubewire, else the user's XDG state home", () => {
  assert.equal(stateRoot({ KUBEWIRE_STATE_DIR: '/x' }, 1000), '/x');
  assert.equal(stateRoot({}, 0), '/var/lib/kubewire');
  assert.equal(stateRoot({ XDG_STATE_HOME: '/home/u/.st', HOME: '/home/u' }, 1000), '/home/u/.st/kubewire');
  assert.equal(stateRoot({ HOME: '/home/u' }, 1000), '/home/u/.local/state/kubewire');
});

test('hints are typed as the user runs kubewire: sudo when they used it, --cluster only for another cluster', () => {
  assert.equal(typed('get nodes', 'kubewire', {}), 'kubewire get nodes');
  assert.equal(typed('get nodes', 'dev', {}), 'kubewire get nodes --cluster dev');
  assert.equal(typed('get nodes', 'dev', { KUBEWIRE_CLUSTER: 'dev', SUDO_USER: 'ann' }), 'sudo kubewire get nodes');
});

const ALL_TOOLS = new Set(['ip', 'bridge', 'iptables-legacy-restore', 'iptables-nft-restore', 'conntrack', 'nft', 'ipset', 'ipvsadm']);
const spec = (o: Partial<ClusterSpec> = {}): ClusterSpec => ({ ...DEFAULT_SPEC, name: 'c', ...o }) as ClusterSpec;
const facts = (o: Partial<HostFacts> = {}): HostFacts => ({ tools: ALL_TOOLS, brNetfilter: true, ...o });

test('preflight: one line per missing piece, only for what this cluster uses', () => {
  assert.deepEqual(missingOnHost(spec(), facts()), []);
  const without = (...names: string[]) => new Set([...ALL_TOOLS].filter((t) => !names.includes(t)));
  assert.deepEqual(missingOnHost(spec(), facts({ tools: without('nft', 'ipset', 'ipvsadm') })), [], 'iptables mode needs neither nft nor ipset');
  const nft = missingOnHost(spec({ proxyMode: 'nftables' }), facts({ tools: without('nft') }));
  assert.equal(nft.length, 1);
  assert.match(nft[0]!, /^nft is not on PATH .*apt-get install nftables$/);
  assert.deepEqual(missingOnHost(spec(), facts({ tools: without('iptables-legacy-restore') })), [], 'either iptables will do when none is asked for');
  assert.match(missingOnHost(spec({ iptablesBackend: 'legacy' }), facts({ tools: without('iptables-legacy-restore') })).join('\n'), /iptables-legacy-restore is not on PATH \(--iptables-backend legacy\)/);
  assert.match(missingOnHost(spec(), facts({ tools: without('iptables-legacy-restore', 'iptables-nft-restore') })).join('\n'), /neither iptables-legacy-restore nor iptables-nft-restore/);
  assert.match(missingOnHost(spec(), facts({ brNetfilter: false })).join('\n'), /br_netfilter is not loaded.*modprobe br_netfilter/);
  assert.equal(missingOnHost(spec({ proxyMode: 'nftables' }), facts({ tools: new Set(), brNetfilter: false })).length, 6, 'ip, bridge, iptables, conntrack, nft, br_netfilter');
});

test('tools on PATH: executables only, first directory that has one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-path-'));
  try {
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, 'a', 'ip'), '#!/bin/sh\n');
    chmodSync(join(dir, 'a', 'ip'), 0o755);
    writeFileSync(join(dir, 'b', 'nft'), 'not executable');
    assert.deepEqual([...toolsOnPath(['ip', 'nft', 'conntrack'], `${join(dir, 'a')}:${join(dir, 'b')}`)], ['ip'], 'nft there is not executable');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
