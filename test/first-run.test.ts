// What a new user meets first, as they meet it: a freshly booted machine (no /run/netns yet:
// a pristine mount namespace with a fresh tmpfs on /run stands for one), a host missing a
// tool, and an ordinary user's commands against root's cluster, each refused in one line and
// in bounded time. The cluster in its own kernel run by user nobody is in uml.test.ts.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { clusterProcesses } from '../src/daemon/process.ts';
import { linux } from '../src/dataplane/linux/host.ts';
import { NOT_ROOT } from './helpers.ts';
import { Kube, webApp } from './kube.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');

function sh(argv: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, timeout: opts.timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Ends whatever a cluster of this name left running (its namespaces die with the private mount namespace). */
async function sweep(cluster: string, state: string): Promise<void> {
  for (const p of clusterProcesses(cluster)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const ns of await linux.listNetns(`kw_${cluster}_`)) await linux.deleteNetns(ns).catch(() => undefined);
  rmSync(state, { recursive: true, force: true });
}

describe('a fresh machine', { skip: NOT_ROOT }, () => {
  test('up, a Deployment behind a Service, and down, in a pristine mount namespace (a fresh tmpfs on /run: no /run/netns)', async () => {
    const cluster = 'kwfresh';
    const state = mkdtempSync(join(tmpdir(), 'kwt-fresh-'));
    after(() => sweep(cluster, state));
    const app = join(state, 'app.yaml');
    writeFileSync(app, webApp({ replicas: 2 }));
    const kw = `${process.execPath} ${BIN}`;
    const script = [
      'set -e',
      'mount -t tmpfs tmpfs /run',
      'test -e /run/netns || echo "netns-dir: absent"',
      `trap '${kw} down >/dev/null 2>&1 || true' EXIT`,
      `${kw} up`,
      'echo "netns-dir: $(findmnt -no PROPAGATION --mountpoint /run/netns | tail -1)"',
      `${kw} apply -f ${app}`,
      `${kw} wait --for=condition=Ready pod -l app=web --timeout=60s`,
      `ip=$(${kw} get svc web -o json | ${process.execPath} -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).spec.clusterIP))')`,
      `${kw} exec --node ${cluster}-node-1 -- curl -s -m 5 "http://$ip/"`,
      `${kw} down`,
      'trap - EXIT',
    ].join('\n');
    const r = await sh(['unshare', '--mount', '--propagation', 'private', 'bash', '-c', script], { env: { ...process.env, KUBEWIRE_STATE_DIR: state, KUBEWIRE_CLUSTER: cluster }, timeoutMs: 180_000 });
    const all = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.code, 0, all);
    assert.match(r.stdout, /^netns-dir: absent$/m, 'the mount namespace starts as a freshly booted machine: no /run/netns');
    assert.match(r.stdout, /^netns-dir: shared$/m, 'kubewire made /run/netns a shared mount point, as ip netns add does');
    assert.match(r.stdout, /^pod: web-/m, "the node reached a pod through the Service's ClusterIP");
    assert.match(r.stdout, /cluster kwfresh removed \(\d+ namespaces\)/);
    assert.deepEqual(clusterProcesses(cluster), [], 'no process of the cluster is left');
  });

  test('a host without the tools: up names each one missing on a line and makes nothing', async () => {
    const state = mkdtempSync(join(tmpdir(), 'kwt-preflight-'));
    const empty = join(state, 'bin');
    mkdirSync(empty);
    try {
      const r = await sh([process.execPath, BIN, 'up', '--cluster', 'kwpre', '--proxy-mode', 'nftables'], { env: { ...process.env, PATH: empty, KUBEWIRE_STATE_DIR: state, KUBECONFIG: join(state, 'kubeconfig') }, timeoutMs: 30_000 });
      assert.equal(r.code, 1);
      const lines = r.stderr.trim().split('\n');
      assert.match(lines[0]!, /this machine lacks what cluster "kwpre" needs/);
      for (const tool of ['ip', 'conntrack', 'nft']) assert.ok(lines.some((l) => l.startsWith(`  - ${tool} is not on PATH`) && /apt-get install/.test(l)), `${tool}:\n${r.stderr}`);
      assert.ok(lines.some((l) => /iptables-legacy-restore nor iptables-nft-restore/.test(l)), r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.deepEqual(await linux.listNetns('kw_kwpre_'), [], 'no namespace made');
      assert.equal(existsSync(join(state, 'kwpre')), false, 'no state directory made');
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});

/** Why user nobody cannot run this checkout's kubewire here (its directory not theirs to read), or false. */
function nobodyCannotRun(): string | false {
  if (NOT_ROOT) return NOT_ROOT;
  try {
    execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'test', '-r', join(import.meta.dirname, '..', 'dist', 'kubewire.js')]);
    return false;
  } catch {
    return `user nobody cannot read ${join(import.meta.dirname, '..')} (a parent directory is not theirs to enter)`;
  }
}

describe("an ordinary user and root's cluster", { skip: nobodyCannotRun() }, () => {
  const cluster = 'kwroot';
  const state = mkdtempSync(join(tmpdir(), 'kwt-roots-'));
  chmodSync(state, 0o700); // as /var/lib/kubewire: root's alone
  const kube = new Kube(cluster, state);
  after(async () => {
    await kube.run(['down'], { timeoutMs: 60_000 });
    await sweep(cluster, state);
  });

  /** `kubewire ARGS` as user nobody, pointed at root's state directory. */
  const asNobody = (args: string[], env: Record<string, string> = {}) =>
    sh(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, BIN, ...args], { env: { PATH: process.env.PATH!, HOME: '/nonexistent', KUBEWIRE_CLUSTER: cluster, ...env }, timeoutMs: 20_000 });

  test('get, down and exec say permission denied in one line, at once; up on the host kernel says it needs root', async () => {
    const up = await kube.run(['up'], { timeoutMs: 120_000 });
    assert.equal(up.code, 0, up.stderr);
    for (const args of [['get', 'nodes'], ['down'], ['exec', '--node', `${cluster}-node-1`, '--', 'true'], ['describe', 'node', `${cluster}-node-1`]]) {
      const r = await asNobody(args, { KUBEWIRE_STATE_DIR: state });
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^permission denied: /, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.ok(r.ms < 10_000, `${args.join(' ')} answered in ${r.ms.toFixed(0)} ms`);
    }
    // Without KUBEWIRE_STATE_DIR an ordinary user looks in a state directory of their own; root's
    // (/var/lib/kubewire, which does not hold kwroot) is named when they may not look into it.
    const own = await asNobody(['get', 'nodes']);
    assert.equal(own.code, 1);
    const rootsHidden = (await sh(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', 'test', '-x', '/var/lib/kubewire'], { timeoutMs: 5000 })).code !== 0 && existsSync('/var/lib/kubewire');
    assert.match(own.stderr, rootsHidden ? /^permission denied: cluster "kwroot" is not one of yours \(\/nonexistent\/\.local\/state\/kubewire\), and root's clusters \(\/var\/lib\/kubewire\) are not readable by you/ : /^error: cluster "kwroot" does not exist/);
    const host = await asNobody(['up', '--kernel', 'host', '--cluster', 'kwnope']);
    assert.equal(host.code, 1);
    assert.match(host.stderr, /^permission denied: a cluster on this machine's kernel needs root .*sudo kubewire up.*--kernel uml/);
    // Root's cluster is untouched by all of it.
    assert.match(await kube.ok('get', 'nodes'), /kwroot-node-1\s+Ready/);
  });
});
