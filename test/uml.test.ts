// Tests that need a kernel this machine's lacks (IP_VS, dummy links) run in a user-mode Linux
// kernel (src/supervisor/uml.ts): booted for the test, with the host's filesystem as its root
// and no network device of its own but loopback, powered off at the end. test/uml/ runs inside
// one and must pass whole; the Services suite in IPVS mode and a user's session (as root and
// as nobody) run against clusters started with `up --kernel uml`, as a user drives them; the
// user's session as root runs on the Services suite's cluster (one boot fewer).

import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ipvsAvailable } from '../src/cluster/cluster.ts';
import { runCaptured } from '../src/supervisor/supervisor.ts';
import { runInUml, umlMissing } from '../src/supervisor/uml.ts';
import { NOT_ROOT } from './helpers.ts';
import { echoPod, Kube, waitFor } from './kube.ts';
import { execFile, execFileSync } from 'node:child_process';

/** Why user nobody cannot run this checkout's kubewire here (a parent directory not theirs to enter), or false. */
function nobodyCannotRun(): string | false {
  try {
    execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'test', '-r', join(import.meta.dirname, '..', 'dist', 'kubewire.js')]);
    return false;
  } catch {
    return `user nobody cannot read ${join(import.meta.dirname, '..')}`;
  }
}

const skip = NOT_ROOT || (umlMissing() ? `user-mode Linux is not installed: ${umlMissing()}` : false);

/** The lines of a TAP report that say what failed. */
const failures = (tap: string): string => tap.split('\n').filter((l) => /^\s*not ok|^\s+error:|^\s+(expected|actual):/.test(l)).join('\n');

/** Runs a test command in a fresh UML kernel; it must exit 0 having passed `passes` tests. */
async function passesInUml(command: string, passes: number, opts: { env?: Record<string, string>; memMB?: number; timeoutMs: number }): Promise<void> {
  // tsx's cache of compiled files (keyed by their content) is the host's: in there, compiling
  // every test file and what it imports again takes seconds for each process that loads it.
  const tsxCache = join(tmpdir(), `tsx-${process.getuid!()}`);
  const r = await runInUml({ command: `[ -d ${tsxCache} ] && ln -sfn ${tsxCache} "$TMPDIR/tsx-$(id -u)"; ${command}`, cwd: process.cwd(), ...(opts.env ? { env: opts.env } : {}), memMB: opts.memMB ?? 1024, timeoutMs: opts.timeoutMs });
  const failed = failures(r.output);
  assert.equal(r.code, 0, `inside UML (${r.seconds.toFixed(0)} s):\n${failed || r.output.slice(-3000)}\n--- kernel:\n${r.console.split('\n').slice(-10).join('\n')}`);
  assert.match(r.output, new RegExp(`^# pass ${passes}$`, 'm'), r.output.split('\n').filter((l) => /^# /.test(l)).join('\n'));
}

// A UML kernel runs on one CPU: two at a time use this machine's two.
describe('kernels of their own (user-mode Linux), two at a time', { skip, concurrency: 2 }, () => {
  test('the Services suite in IPVS mode against a cluster in its own kernel (up --kernel uml; every scenario the iptables and nftables modes pass), and a user\'s session with it (up\'s words, trace, exit statuses, logs, errors, down leaving nothing)', async () => {
    // Driven from here as a user drives such a cluster: the API verbs through the relay, exec
    // started by the guest; describe of other kinds and trace start Node in there. The
    // session's checks run on this cluster (services.test.ts), not on a kernel booted for them.
    const scratch = mkdtempSync(join(tmpdir(), 'kwt-svcuml-'));
    try {
      // NODE_TEST_CONTEXT would make the inner run report to this runner's protocol, not TAP.
      const { NODE_TEST_CONTEXT: _, ...outer } = process.env;
      const env = { ...outer, KUBEWIRE_TEST_SCRATCH: scratch, KUBEWIRE_TEST_KERNEL: 'uml', KUBEWIRE_TEST_PROXY_MODES: 'ipvs', KUBEWIRE_TEST_SLOWDOWN: '4' };
      const r = await new Promise<{ code: number; stdout: string }>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', '--test', 'test/services.test.ts'], { env, timeout: 600_000, maxBuffer: 64 << 20 }, (err, stdout) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout }));
      });
      const failed = failures(r.stdout);
      assert.equal(r.code, 0, failed || r.stdout.slice(-3000));
      assert.match(r.stdout, /^# pass 19$/m);
    } finally {
      // A run cut short leaves its cluster's kernel running: power it off.
      for (const dir of readdirSync(scratch).filter((d) => d.startsWith('kwt-svc-'))) {
        for (const cluster of readdirSync(join(scratch, dir))) await new Kube(cluster, join(scratch, dir)).run(['down']).catch(() => undefined);
      }
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  test('IPVS mode on a real kernel: virtual and real servers, kube-ipvs0, ClusterIP and NodePort, graceful termination, sh, strict ARP', async () => {
    await passesInUml('node --import tsx --test test/uml/ipvs-mode.ts', 2, { timeoutMs: 240_000 });
  });

  test('an ordinary user (nobody): up runs the cluster in a kernel of its own and says so, in their own state directory; the API verbs run on the host through the relay, exec in there; down leaves nothing', { skip: nobodyCannotRun(), timeout: 300_000 }, async () => {
    const home = mkdtempSync(join(tmpdir(), 'kwt-nobody-'));
    chownSync(home, 65534, 65534);
    const bin = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
    const env = { PATH: process.env.PATH!, HOME: '/nonexistent', XDG_STATE_HOME: home, KUBECONFIG: join(home, 'kubeconfig') };
    const asNobody = (args: string[], input?: string) => runCaptured(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, bin, ...args], { env, ...(input !== undefined ? { input } : {}) });
    try {
      // IPVS with a scheduler of its own: the options reach the `up` inside.
      const up = await asNobody(['up', '--cluster', 'kwn', '--nodes', '1', '--proxy-mode', 'ipvs', '--ipvs-scheduler', 'wrr']);
      assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
      assert.match(up.stdout, /not root: the cluster runs in a kernel of its own/);
      assert.match(up.stdout, /cluster kwn is up in its own kernel/);
      assert.ok(statSync(join(home, 'kubewire', 'kwn', 'kernel.json')).uid === 65534, "the cluster's record is nobody's, in their state directory");
      const t0 = performance.now();
      const nodes = await asNobody(['get', 'nodes', '--cluster', 'kwn']);
      console.log(`# get nodes as nobody, through the relay of the guest's API: ${(performance.now() - t0).toFixed(0)} ms`);
      assert.equal(nodes.code, 0, nodes.stderr);
      assert.match(nodes.stdout, /kwn-node-1\s+Ready/);
      const applied = await asNobody(['apply', '--cluster', 'kwn', '-f', '-'], echoPod('p1'));
      assert.equal(applied.code, 0, applied.stderr);
      await waitFor('p1 running', async () => /p1\s+1\/1\s+Running/.test((await asNobody(['get', 'pods', '--cluster', 'kwn'])).stdout), 90_000);
      const inside = await asNobody(['exec', '--cluster', 'kwn', 'p1', '--', 'id', '-u']);
      assert.equal(inside.stdout.trim(), '0', 'root inside its own kernel, nobody outside');
      const ipvs = await asNobody(['exec', '--cluster', 'kwn', '--node', 'kwn-node-1', '--', 'ipvsadm', '-Ln']);
      assert.match(ipvs.stdout, /TCP  10\.96\.0\.1:443 wrr/, `the kubernetes Service is a wrr virtual server:\n${ipvs.stdout}${ipvs.stderr}`);
      const down = await asNobody(['down', '--cluster', 'kwn']);
      assert.equal(down.code, 0, down.stderr);
      assert.equal(existsSync(join(home, 'kubewire', 'kwn')), false);
      assert.equal((await runCaptured(['pgrep', '-u', '65534', '-f', home])).stdout.trim(), '', 'no process of its kernel is left');
    } finally {
      await asNobody(['down', '--cluster', 'kwn']).catch(() => undefined);
      await runCaptured(['pkill', '-KILL', '-u', '65534', '-f', home]).catch(() => undefined);
      rmSync(home, { recursive: true, force: true });
    }
  });

  test('up --kernel uml refuses what that kernel cannot do before booting it; up --proxy-mode ipvs on a kernel without IPVS names --kernel uml', async () => {
    const state = mkdtempSync(join(tmpdir(), 'kwt-kernel-'));
    const kube = new Kube('kwr', state);
    try {
      const nft = await kube.run(['up', '--kernel', 'uml', '--proxy-mode', 'nftables']);
      assert.equal(nft.code, 1);
      assert.match(nft.stderr, /^error: .*nf_tables without its ip family/m);
      const sched = await kube.run(['up', '--kernel', 'uml', '--proxy-mode', 'ipvs', '--ipvs-scheduler', 'fastest']);
      assert.equal(sched.code, 1);
      assert.match(sched.stderr, /^error: --ipvs-scheduler "fastest": must be one of rr, wrr/m);
      assert.equal(existsSync(join(state, 'kwr')), false, 'nothing was made');
      if (!ipvsAvailable()) {
        const ipvs = await kube.run(['up', '--proxy-mode', 'ipvs']);
        assert.equal(ipvs.code, 1);
        assert.match(ipvs.stderr, /--kernel uml/);
      } else console.log('# this kernel has IPVS: the refusal of --proxy-mode ipvs on one without is not exercised');
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});
