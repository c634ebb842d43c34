// Tests that need a kernel this machine's lacks (IP_VS, dummy links) run in a user-mode Linux
// kernel (src/supervisor/uml.ts): booted for the test, with the host's filesystem as its root
// and no network device of its own but loopback, powered off at the end. test/uml/ runs inside
// one and must pass whole; the Services suite in IPVS mode and a user's session (as root and
// as nobody) run against clusters started with `up --kernel uml`, as a user drives them.

import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ipvsAvailable } from '../src/cluster/cluster.ts';
import { linux } from '../src/dataplane/linux/host.ts';
import { runCaptured } from '../src/supervisor/supervisor.ts';
import { runInUml, umlMissing } from '../src/supervisor/uml.ts';
import { NOT_ROOT } from './helpers.ts';
import { echoPod, field, Kube, waitFor, webApp } from './kube.ts';
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
  test('the Services suite in IPVS mode against a cluster in its own kernel (up --kernel uml; every scenario the iptables and nftables modes pass)', async () => {
    // Driven from here as a user drives such a cluster: the API verbs through the relay, exec
    // started by the guest; only describe starts Node in there.
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
      assert.match(r.stdout, /^# pass 17$/m);
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

  test('a cluster in its own kernel: up --kernel uml, every verb run in there through the channel, down leaves nothing', async () => {
    const state = mkdtempSync(join(tmpdir(), 'kwt-kernel-'));
    const kube = new Kube('kwk', state);
    try {
      const up = await kube.run(['up', '--kernel', 'uml', '--nodes', '2', '--proxy-mode', 'ipvs', '--ipvs-scheduler', 'wrr'], { timeoutMs: 240_000 });
      assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
      assert.match(up.stdout, /kernel booted in [\d.]+ s/);
      assert.match(up.stdout, /cluster kwk is up in its own kernel/);
      assert.deepEqual(await linux.listNetns('kwk-'), [], "none of its namespaces is the host's");
      assert.match(readFileSync(join(state, 'kwk', 'kernel.log'), 'utf8'), /Linux version 6\./, "the kernel's console is in the cluster's log");

      const nodes = await kube.json('get', 'nodes');
      assert.deepEqual(nodes.items.map((n: any) => n.metadata.name).sort(), ['kwk-node-1', 'kwk-node-2']);
      await kube.apply(webApp({ serviceType: 'NodePort' })); // stdin travels into the kernel
      const pods = await waitFor('two web pods running', async () => {
        const list = (await kube.json('get', 'pods')).items.filter((p: any) => p.status?.phase === 'Running' && p.status?.podIP);
        return list.length === 2 ? list : undefined;
      }, 60_000);
      const svc = await kube.json('get', 'service', 'web');
      // Running is not yet programmed: the proxy syncs once the endpoints are ready, which in this
      // kernel, busy starting the DNS pods and the ingress controllers, can take tens of seconds.
      const answer = await waitFor('the ClusterIP answers from a pod', async () => {
        const r = await kube.run(['exec', pods[0].metadata.name, '--', 'curl', '-s', '-m', '5', `http://${svc.spec.clusterIP}/`]);
        return r.code === 0 ? r.stdout : undefined;
      }, 120_000);
      assert.ok(pods.some((p: any) => p.metadata.name === field(answer, 'pod')), `a web pod answered the ClusterIP: ${answer}`);
      const ipvs = await kube.ok('exec', '--node', 'kwk-node-1', '--', 'ipvsadm', '-Ln');
      assert.match(ipvs, new RegExp(`TCP  ${svc.spec.clusterIP.replace(/\./g, '\\.')}:80 wrr`));
      for (const p of pods) assert.match(ipvs, new RegExp(`-> ${p.status.podIP.replace(/\./g, '\\.')}:8080`));
      // Each node's proxy syncs on its own: node 2's may still be at it.
      await waitFor("the ClusterIP on node 2's kube-ipvs0", async () => new RegExp(svc.spec.clusterIP.replace(/\./g, '\\.')).test(await kube.ok('exec', '--node', 'kwk-node-2', '--', 'ip', '-br', 'addr', 'show', 'kube-ipvs0')), 60_000);
      const viaNodePort = await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '5', `http://172.18.0.11:${svc.spec.ports[0].nodePort}/`);
      assert.ok(field(viaNodePort, 'pod'), `the external client reached a pod through the NodePort: ${viaNodePort}`);
      // kubewire trace in a kernel without nf_tables: TRACE in raw, mangle's chains as observation points, IPVS's choice.
      const traced = JSON.parse(await kube.ok('trace', `pod/${pods[0].metadata.name}`, 'service/web', '-o', 'json'));
      assert.equal(traced.verdict, 'delivered', traced.reason);
      const ipvsHop = traced.hops.find((h: any) => h.kind === 'ipvs');
      assert.match(ipvsHop?.detail ?? '', new RegExp(`IPVS virtual server ${svc.spec.clusterIP.replace(/\./g, '\\.')}:80 → real server 10\\.244\\.\\d+\\.\\d+:8080`));
      assert.ok(pods.some((p: any) => `default/${p.metadata.name}` === traced.destination.pod), `delivered to a web pod: ${traced.destination.pod}`);
      const outside = JSON.parse(await kube.ok('trace', 'external', `172.18.0.11:${svc.spec.ports[0].nodePort}`, '-o', 'json'));
      assert.equal(outside.verdict, 'delivered', outside.reason);
      assert.ok(outside.hops.some((h: any) => h.kind === 'ipvs'), 'the NodePort is an IPVS virtual server too');
      assert.doesNotMatch(await kube.ok('exec', '--node', 'kwk-node-1', '--', 'iptables-legacy-save'), /KUBEWIRE-TRACE/, 'the trace leaves no rule');
      assert.equal((await kube.run(['exec', pods[0].metadata.name, '--', 'sh', '-c', 'exit 7'])).code, 7, 'the exit status comes back');
      assert.match(await kube.ok('logs', pods[0].metadata.name), /kubewire built-in/);
      assert.match(await kube.ok('describe', 'service', 'web'), /IPVS on kwk-node-1/);
      const bad = await kube.run(['get', 'pods', 'nope']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /not found/, 'errors come back as the CLI prints them');

      const down = await kube.run(['down']);
      assert.equal(down.code, 0, down.stderr);
      assert.match(down.stdout, /its kernel powered off/);
      assert.equal(existsSync(join(state, 'kwk')), false, 'its host directory is gone');
      const left = await runCaptured(['pgrep', '-f', join(state, 'kwk')]);
      assert.equal(left.stdout.trim(), '', 'no process of its kernel is left');
    } finally {
      await kube.run(['down']).catch(() => undefined);
      rmSync(state, { recursive: true, force: true });
    }
  });

  test('an ordinary user (nobody): up runs the cluster in a kernel of its own and says so, in their own state directory; the API verbs run on the host through the relay, exec in there; down leaves nothing', { skip: nobodyCannotRun(), timeout: 300_000 }, async () => {
    const home = mkdtempSync(join(tmpdir(), 'kwt-nobody-'));
    chownSync(home, 65534, 65534);
    const bin = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
    const env = { PATH: process.env.PATH!, HOME: '/nonexistent', XDG_STATE_HOME: home, KUBECONFIG: join(home, 'kubeconfig') };
    const asNobody = (args: string[], input?: string) => runCaptured(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, bin, ...args], { env, ...(input !== undefined ? { input } : {}) });
    try {
      const up = await asNobody(['up', '--cluster', 'kwn', '--nodes', '1']);
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
