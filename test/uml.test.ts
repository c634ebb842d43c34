// Tests that need a kernel this machine's lacks (IP_VS, dummy links) run inside a user-mode
// Linux kernel (src/supervisor/uml.ts): booted for the test, with the host's filesystem as its
// root and no network device of its own but loopback, powered off at the end. Each runs a
// test file under test/uml/ there and must pass it whole.

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
