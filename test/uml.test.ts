// Tests that need a kernel this machine's lacks (IP_VS, dummy links) run inside a user-mode
// Linux kernel (src/supervisor/uml.ts): booted for the test, with the host's filesystem as its
// root and no network device of its own but loopback, powered off at the end. Each runs a
// test file there (one of test/uml/, or the Services suite in IPVS mode) and must pass it whole.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runInUml, umlMissing } from '../src/supervisor/uml.ts';
import { NOT_ROOT } from './helpers.ts';

const skip = NOT_ROOT || (umlMissing() ? `user-mode Linux is not installed: ${umlMissing()}` : false);

test('IPVS mode on a real kernel (UML): virtual and real servers, kube-ipvs0, traffic through ClusterIP and NodePort, an endpoint removed', { skip }, async () => {
  const r = await runInUml({ command: 'node --import tsx --test test/uml/ipvs-mode.ts', cwd: process.cwd(), timeoutMs: 240_000 });
  assert.equal(r.code, 0, `inside UML (${r.seconds.toFixed(0)} s):\n${r.output.split('\n').filter((l) => !/^\s+at /.test(l)).join('\n')}\n--- kernel:\n${r.console.split('\n').slice(-20).join('\n')}`);
  assert.match(r.output, /^# pass 1$/m);
});

test('the Services suite in IPVS mode, a whole cluster inside UML (every scenario the iptables and nftables modes pass)', { skip }, async () => {
  // Latency limits x4: in UML every process start and system call costs several times more.
  const r = await runInUml({ command: 'node --import tsx --test test/services.test.ts', cwd: process.cwd(), env: { KUBEWIRE_TEST_PROXY_MODES: 'ipvs', KUBEWIRE_TEST_SLOWDOWN: '4' }, memMB: 2048, timeoutMs: 600_000 });
  const failed = r.output.split('\n').filter((l) => /^\s*not ok|^\s+error:/.test(l)).join('\n');
  assert.equal(r.code, 0, `inside UML (${r.seconds.toFixed(0)} s):\n${failed}\n--- kernel:\n${r.console.split('\n').slice(-10).join('\n')}`);
  assert.match(r.output, /^# pass 17$/m);
});
