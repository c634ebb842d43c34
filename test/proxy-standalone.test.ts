// `kubewire proxy` as kube-proxy runs: its own program in a node's network namespace, against
// the cluster's API over HTTPS with the kubeconfig `up` wrote. A 2-node cluster whose second
// node has no in-daemon proxier (up --external-proxy); the program started there makes a
// Service reachable from that node; killed with -9 and started again, its first sync leaves
// exactly the rules it had and an established connection through the Service goes on; with the
// API server gone (the daemon killed) the rules stay, /healthz says so, and once the daemon is
// back a new Service is programmed.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Service } from '../src/api/types.ts';
import { NOT_ROOT } from './helpers.ts';
import { Kube, waitFor, webApp } from './kube.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');

const MANIFEST = `${webApp()}---
apiVersion: v1
kind: Pod
metadata: {name: tcpecho, labels: {app: tcpecho}}
spec:
  containers: [{name: c, image: node, command: [node, -e, "require('net').createServer((s) => s.pipe(s)).listen(7000)"], ports: [{containerPort: 7000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: tcpecho}
spec:
  selector: {app: tcpecho}
  ports: [{port: 7000}]
`;

/** A TCP client in `netns` that sends each asked line and gives back its echo: one connection, kept. */
function keptConnection(netns: string, ip: string, port: number) {
  const script = `const s=require('net').connect(${port},'${ip}');s.setEncoding('utf8');s.on('connect',()=>console.log('connected'));s.on('data',(d)=>process.stdout.write(d));s.on('close',()=>{console.log('closed');process.exit(0)});process.stdin.on('data',(d)=>s.write(d));setTimeout(()=>process.exit(2),300000);`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script]);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return {
    child,
    connected: () => waitFor('the kept connection', async () => out.includes('connected'), 10_000),
    /** Sends `word` and waits (3 s at most) for it to come back. */
    echo: async (word: string) => {
      child.stdin.write(`${word}\n`);
      await waitFor(`the echo of ${word} (output so far: ${JSON.stringify(out)})`, async () => out.includes(`${word}\n`), 3000);
    },
  };
}

describe('kubewire proxy: kube-proxy as its own program in a node', { skip: NOT_ROOT }, () => {
  const cluster = process.env.KUBEWIRE_TEST_CLUSTER ?? `kwpx${process.pid % 10000}`;
  const node2 = `${cluster}-node-2`;
  const netns2 = `kw_${cluster}_node-2`;
  let dir: string;
  let kube: Kube;
  let kubeconfig: string;
  let proxy: ChildProcess | undefined;
  let proxyLog = '';
  let web: string;
  let echoIP: string;
  const inNode = (...argv: string[]) => kube.ok('exec', '--node', node2, '--', ...argv);
  const curl = (url: string) => kube.run(['exec', '--node', node2, '--', 'curl', '-s', '-m', '2', url]).then((r) => (r.code === 0 ? r.stdout : undefined));
  const startProxy = () => {
    proxyLog = '';
    proxy = spawn('ip', ['netns', 'exec', netns2, process.execPath, BIN, 'proxy', '--kubeconfig', kubeconfig, '--hostname-override', node2, '--cluster-cidr', '10.244.0.0/16', '--iptables-min-sync-period', '100ms'], { stdio: ['ignore', 'ignore', 'pipe'] });
    proxy.stderr!.on('data', (d: Buffer) => (proxyLog += d.toString()));
  };
  const syncs = async () => Number(/^kubeproxy_sync_proxy_rules_duration_seconds_count (\d+)/m.exec(await inNode('curl', '-s', 'http://127.0.0.1:10249/metrics'))?.[1] ?? 0);
  /** The node's rules as iptables-save prints them, without counters and comments. */
  const rules = async () => {
    const saves = await Promise.all(['nat', 'filter'].map((t) => inNode('iptables-legacy-save', '-t', t)));
    return saves.join('').split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/ \[\d+:\d+\]$/, '')).join('\n');
  };

  before(async () => {
    dir = mkdtempSync(join(process.env.KUBEWIRE_TEST_SCRATCH ?? tmpdir(), 'kwt-pxs-'));
    kubeconfig = join(dir, 'kubeconfig');
    kube = new Kube(cluster, dir);
    const up = await kube.run(['up', '--nodes', '2', '--iptables-backend', 'legacy', '--external-proxy', node2, '--kubeconfig', kubeconfig], { timeoutMs: 240_000 });
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    await kube.apply(MANIFEST);
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '60s');
    await kube.ok('wait', '--for=condition=Ready', 'pod/tcpecho', '--timeout', '60s');
    web = (await kube.json<Service>('get', 'service', 'web')).spec.clusterIP!;
    echoIP = (await kube.json<Service>('get', 'service', 'tcpecho')).spec.clusterIP!;
  });
  after(async () => {
    proxy?.kill('SIGKILL');
    await kube.run(['down'], { timeoutMs: 120_000 });
    rmSync(dir, { recursive: true, force: true });
  });

  test('the node has no proxier of the daemon; kubewire proxy started there makes the Service reachable', async () => {
    assert.equal(await curl(`http://${web}/`), undefined, 'nothing answers the ClusterIP on node 2 before its proxy runs');
    assert.doesNotMatch(await rules(), /KUBE-SERVICES/);
    startProxy();
    await waitFor('the ClusterIP answering through the standalone proxy', () => curl(`http://${web}/`), 20_000);
    assert.match(proxyLog, new RegExp(`kube-proxy \\(iptables\\) for node ${node2} against https://127\\.0\\.0\\.1:\\d+`));
    const health = await inNode('curl', '-s', '-i', 'http://127.0.0.1:10256/healthz');
    assert.match(health, /^HTTP\/1\.1 200/);
    assert.match(health, /\{"lastUpdated": "\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.\d]* \+0000 UTC m=\+[\d.]+","currentTime": "[^"]+", "nodeEligible": true\}$/);
  });

  test('kill -9 and start again: after one sync the rules are exactly as they were, and a connection through the Service goes on', async () => {
    const conn = keptConnection(netns2, echoIP, 7000);
    try {
      await conn.connected();
      await conn.echo('before');
      const was = await rules();
      proxy!.kill('SIGKILL');
      await new Promise((r) => proxy!.once('exit', r));
      await conn.echo('while-gone');
      startProxy();
      await waitFor('the first sync of the new proxy', async () => (await syncs()) >= 1, 20_000);
      assert.equal(await rules(), was);
      await conn.echo('after');
    } finally {
      conn.child.kill('SIGKILL');
    }
  });

  test('the API server killed and started again: rules kept meanwhile (log and healthz say so), changes caught up after', async () => {
    const pid = Number(readFileSync(join(dir, cluster, 'daemon.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await waitFor('the proxy hearing that the API went away', async () => /the API server is away/.test(proxyLog), 15_000);
    assert.match(await inNode('curl', '-s', 'http://127.0.0.1:10256/healthz'), /"apiServer": "unreachable since /);
    assert.ok(await curl(`http://${web}/`), 'the ClusterIP still answers');
    const up = await kube.run(['up'], { timeoutMs: 240_000 });
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    await kube.apply(webApp().split('---\n')[1]!.replace('name: web}', 'name: web2}'));
    const web2 = (await kube.json<Service>('get', 'service', 'web2')).spec.clusterIP!;
    await waitFor('the Service made after the restart, through the standalone proxy', () => curl(`http://${web2}/`), 30_000);
    assert.match(proxyLog, /the API server answers again/);
    assert.doesNotMatch(await inNode('curl', '-s', 'http://127.0.0.1:10256/healthz'), /apiServer/);
  });
});
