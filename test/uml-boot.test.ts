// How a cluster's own kernel boots (src/supervisor/uml.ts), without booting one: the modules a
// cluster loads and their order, the init the kernel runs (valid perl, with what it must do),
// the kernel's command line. test/uml.test.ts boots them.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { clusterModules, kernelArgv, LAB_MODULES, moduleLoadOrder, umlMissing, writeGuestInit } from '../src/supervisor/uml.ts';

const DEP = `kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/net/ipv6/ipv6.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko kernel/net/ipv6/ipv6.ko
kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko kernel/net/ipv6/ipv6.ko
kernel/drivers/net/veth.ko:
kernel/lib/crc-ccitt.ko:
`;

test('modules load after what they need, each once, names with - or _ alike; unknown ones are named', () => {
  const { files, missing } = moduleLoadOrder(['veth', 'br_netfilter', 'bridge', 'crc_ccitt', 'nosuch'], DEP);
  assert.deepEqual(files, ['kernel/drivers/net/veth.ko', 'kernel/net/ipv6/ipv6.ko', 'kernel/net/llc/llc.ko', 'kernel/net/802/stp.ko', 'kernel/net/bridge/bridge.ko', 'kernel/net/bridge/br_netfilter.ko', 'kernel/lib/crc-ccitt.ko']);
  assert.deepEqual(missing, ['nosuch']);
  for (const [i, f] of files.entries()) for (const d of DEP.split('\n').find((l) => l.startsWith(`${f}:`))!.split(':')[1]!.trim().split(/\s+/).filter(Boolean)) assert.ok(files.indexOf(d) < i, `${d} before ${f}`);
});

test('a cluster loads IPVS only in ipvs mode and VXLAN only in vxlan mode; every module is one of the lab\'s', () => {
  const plain = clusterModules({ mode: 'routed', proxyMode: 'iptables' });
  assert.ok(!plain.includes('ip_vs') && !plain.includes('vxlan') && !plain.includes('dummy'));
  for (const m of ['veth', 'bridge', 'br_netfilter', 'ip_set', 'xt_TRACE', 'nf_conntrack_netlink']) assert.ok(plain.includes(m), m);
  assert.ok(clusterModules({ mode: 'routed', proxyMode: 'ipvs' }).includes('ip_vs_wrr'));
  assert.ok(clusterModules({ mode: 'routed', proxyMode: 'ipvs' }).includes('dummy'));
  assert.ok(clusterModules({ mode: 'vxlan', proxyMode: 'iptables' }).includes('vxlan'));
  for (const m of clusterModules({ mode: 'vxlan', proxyMode: 'ipvs' })) assert.ok(LAB_MODULES.includes(m), m);
});

test("the kernel's command line: hostfs root, the channel on fds 3 and 4, no legacy ptys nor serial lines (seconds of its boot)", () => {
  const argv = kernelArgv('/x/init', 512, true, '/x');
  for (const a of ['mem=512M', 'uml_dir=/x', 'rootfstype=hostfs', 'init=/x/init', 'con0=fd:0,fd:1', 'con1=fd:3,fd:4', 'pty.legacy_count=0', 'ssl=none']) assert.ok(argv.includes(a), a);
  assert.ok(!kernelArgv('/x/init', 512, false, '/x').includes('con1=fd:3,fd:4'));
});

test('the init: valid perl that mounts, loads the listed modules, sets the environment and runs the command as written', { skip: umlMissing() ?? (process.arch === 'x64' ? false : 'the perl init is written for x64 and arm64 only') }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-umlboot-'));
  try {
    const command = `echo 'it''s' "$HOME" > /run/x`;
    const init = writeGuestInit({ dir, command, cwd: "/tmp/a dir's", env: { KUBEWIRE_X: "a'b" }, modules: ['veth', 'bridge'] });
    execFileSync('perl', ['-c', init], { stdio: 'pipe' }); // throws on a syntax error
    const text = readFileSync(init, 'utf8');
    assert.match(text, /^#!\/usr\/bin\/perl\n/);
    for (const fs of ['proc', 'sysfs', 'tmpfs', 'devpts']) assert.match(text, new RegExp(`mnt\\('${fs}'`), fs);
    assert.match(text, /'veth\.ko'.*'bridge\.ko'/);
    assert.ok(!text.includes("'ip_vs.ko'"));
    assert.ok(text.includes(`'KUBEWIRE_X', 'a\\'b'`), 'the environment, quoted for perl');
    assert.ok(text.includes(`exec('/bin/sh', '-c', 'echo \\'it\\'\\'s\\' "$HOME" > /run/x')`), 'the command, as written');
    assert.ok(text.includes(join(dir, 'modprobe')), "the kernel's own module requests go to the helper");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
