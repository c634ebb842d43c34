// Scale end to end (issue 13), as a user meets it: S Services x 10 endpoints applied with
// `kubewire apply` to a 2-node cluster; the time until a client pod reaches the last
// Service's ClusterIP; then one more Service, and one endpoint change, each until the client
// sees it; for each proxy mode. Then 1,000 pods over 10 nodes until all are Running with
// IPs, and `kubewire get pods -A` at that size. Beside each figure: the daemon's memory and
// the proxier's own sync time (its metrics), the in-process breakdown.
//
// The Services have no selector and one hand-written EndpointSlice each, listing the 10 pods
// of the Deployment "green" (the built-in hello workload answers with its pod's name); their
// ClusterIPs are set in the manifest so that the client can start asking before the apply.
//   npm run bench:scale        SIZES=1000,5000,10000  MODES=nftables,iptables  PODS=1000  NODES=10
//   STANDALONE=1: node 2's proxy is `kubewire proxy`, its own process in the node's namespace
//   against the HTTPS API (up --external-proxy); a client pod on each node, so every figure
//   is given for the daemon's proxier (node 1) and the standalone one (node 2) of the same run.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pod } from '../src/api/types.ts';
import { resourceNamed } from '../src/api/resources.ts';
import { ApiClient } from '../src/client/rest.ts';
import { down } from '../src/lifecycle/cluster.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { daemonPaths } from '../src/state/paths.ts';

const SIZES = (process.env.SIZES ?? '1000,5000,10000').split(',').filter(Boolean).map(Number);
const MODES = (process.env.MODES ?? 'nftables,iptables').split(',').filter(Boolean);
const PODS = Number(process.env.PODS ?? 1000);
const NODES = Number(process.env.NODES ?? 10);
const REACH_TIMEOUT_MS = Number(process.env.REACH_TIMEOUT_S ?? 900) * 1000;
const STANDALONE = process.env.STANDALONE === '1';
const proxies = new Set<ChildProcess>();
const stateDir = mkdtempSync(join(tmpdir(), 'kwb-scale-'));
process.env.KUBEWIRE_STATE_DIR = stateDir;
process.env.KUBECONFIG = join(stateDir, 'kubeconfig'); // the context up merges goes to the scratch state, never ~/.kube/config
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const clusters = new Set<string>();
const cleanup = async () => {
  for (const p of proxies) p.kill('SIGKILL');
  for (const c of clusters) await down(c).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const line = (what: string, value: string, note = '') => console.log(`${what.padEnd(58)}${value.padEnd(26)}${note}`);

function kubewire(cluster: string, args: string[], input?: string): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, KUBEWIRE_CLUSTER: cluster }, timeout: 1_800_000, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubewire ${args.join(' ')}: ${stderr || err.message}`));
      else resolve({ ms: performance.now() - t0, stdout });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** The nth address of the Service range, set in the manifest (10.100.0.0/16 is inside 10.96.0.0/12). */
const vip = (n: number) => `10.100.${(n >> 8) & 255}.${n & 255}`;

/**
 * A client inside the pod that asks `ip`:80 every 20 ms until the answer contains `want`;
 * resolves to the wall-clock time (Date.now()) of the first such answer.
 */
function poller(cluster: string, ip: string, want: string, pod = 'client'): { started: Promise<void>; reached: Promise<number> } {
  const script = `const http=require('http');const [ip,want,limit]=process.argv.slice(1);console.log('polling');
(function go(){const r=http.get({host:ip,port:80,path:'/',timeout:500,agent:false},(res)=>{let b='';res.on('data',(d)=>b+=d);res.on('end',()=>{if(b.includes(want)){console.log('reached '+Date.now());process.exit(0)}setTimeout(go,20)})});r.on('error',()=>setTimeout(go,20));r.on('timeout',()=>r.destroy())})();
setTimeout(()=>{console.log('timeout');process.exit(1)},Number(limit));`;
  const child = spawn(process.execPath, [BIN, 'exec', pod, '--', process.execPath, '-e', script, ip, want, String(REACH_TIMEOUT_MS)], { env: { ...process.env, KUBEWIRE_CLUSTER: cluster } });
  let out = '';
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  const reached = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('polling')) started();
      const m = /reached (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
      if (out.includes('timeout')) reject(new Error(`${ip} not reached within ${REACH_TIMEOUT_MS / 1000} s`));
    });
    child.on('exit', (code) => code && reject(new Error(`poller of ${ip} exited ${code}: ${out}`)));
  });
  return { started: startedP, reached };
}

function servicesManifest(from: number, to: number, endpoints: string[]): string {
  const docs: string[] = [];
  for (let i = from; i < to; i++) {
    docs.push(`apiVersion: v1
kind: Service
metadata: {name: svc-${i}}
spec: {clusterIP: ${vip(i + 1)}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-${i}-1, labels: {kubernetes.io/service-name: svc-${i}}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [${endpoints.map((ip) => `{addresses: [${ip}], conditions: {ready: true}}`).join(', ')}]`);
  }
  return `${docs.join('\n---\n')}\n`;
}

/** A Deployment of the built-in hello workload (it answers with its pod's name). */
const deployment = (name: string, replicas: number) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec: {containers: [{name: hello, image: hello, ports: [{containerPort: 8080}]}]}
`;

const clientPod = (name: string, node?: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec: {${node ? `nodeName: ${node}, ` : ''}containers: [{name: client, image: node, command: [sleep, infinity]}]}
`;

const backends = (cluster: string) => `${deployment('green', 10)}---
${deployment('blue', 10)}---
${STANDALONE ? `${clientPod('client', `${cluster}-node-1`)}---\n${clientPod('client2', `${cluster}-node-2`)}` : clientPod('client')}`;

/** Node 2's `kubewire proxy` (STANDALONE): its own process in the node's namespace, against the HTTPS API. */
function standaloneProxy(cluster: string, mode: string, kubeconfig: string): ChildProcess {
  const node = `${cluster}-node-2`;
  const child = spawn('ip', ['netns', 'exec', `kw_${cluster}_node-2`, process.execPath, BIN, 'proxy', '--kubeconfig', kubeconfig, '--hostname-override', node, '--proxy-mode', mode, '--cluster-cidr', '10.244.0.0/16', '--iptables-min-sync-period', '100ms'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  child.on('exit', (code, sig) => proxies.has(child) && console.error(`kubewire proxy on ${node} exited (${code ?? sig}): ${log}`));
  proxies.add(child);
  return child;
}

const rssOf = (pid: number) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 300_000): Promise<number> {
  const t0 = performance.now();
  while (!(await check().catch(() => false))) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return performance.now() - t0;
}

const rssMB = (cluster: string) => Number(readFileSync(`/proc/${readFileSync(daemonPaths(cluster).pidFile, 'utf8').trim()}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;

async function proxySyncSeconds(cluster: string, node = `${cluster}-node-1`): Promise<string> {
  const m = (await kubewire(cluster, ['exec', '--node', node, '--', 'curl', '-s', 'http://127.0.0.1:10249/metrics'])).stdout;
  const sum = Number(/^kubeproxy_sync_proxy_rules_duration_seconds_sum (\S+)/m.exec(m)?.[1]);
  const count = Number(/^kubeproxy_sync_proxy_rules_duration_seconds_count (\S+)/m.exec(m)?.[1]);
  return `${count} syncs, ${sum.toFixed(1)} s in all`;
}

async function services(mode: string, size: number): Promise<void> {
  const cluster = process.env.CLUSTER ?? `kws${mode.slice(0, 2)}${size}`.slice(0, 20); // CLUSTER: one name for a run of one mode and size
  clusters.add(cluster);
  console.log(`\n${mode} mode, ${size} Services x 10 endpoints (2 nodes)`);
  const kubeconfig = join(stateDir, `${cluster}.kubeconfig`);
  await kubewire(cluster, ['up', '--proxy-mode', mode, ...(STANDALONE ? ['--external-proxy', `${cluster}-node-2`, '--kubeconfig', kubeconfig] : [])]);
  const proxy = STANDALONE ? standaloneProxy(cluster, mode, kubeconfig) : undefined;
  const client = new ApiClient(daemonPaths(cluster).socket);
  await kubewire(cluster, ['apply', '-f', '-'], backends(cluster));
  await until('backends Running', async () => (await client.list<Pod>(resourceNamed('pods')!, 'default')).items.filter((p) => p.status?.phase === 'Running').length === (STANDALONE ? 22 : 21));
  const pods = (await client.list<Pod>(resourceNamed('pods')!, 'default')).items;
  const ips = (app: string) => pods.filter((p) => p.metadata.labels?.app === app).map((p) => p.status!.podIP!);
  const file = join(stateDir, `services-${size}.yaml`);
  writeFileSync(file, servicesManifest(0, size, ips('green')));

  // One poller per client pod: node 1's (the daemon's proxier), and with STANDALONE node 2's (kubewire proxy).
  const clients = STANDALONE ? [['client', 'in-daemon'], ['client2', 'standalone']] : [['client', '']];
  const both = async (what: string, ip: string, want: string, act: () => Promise<{ ms: number }>, note: (apply: number) => string, fromStart = false) => {
    const polls = clients.map(([pod]) => poller(cluster, ip, want, pod));
    await Promise.all(polls.map((p) => p.started));
    const t0 = Date.now();
    const done = await act();
    const t1 = fromStart ? t0 : Date.now();
    for (const [i, p] of polls.entries()) line(`${what}${clients[i]![1] ? ` [${clients[i]![1]}]` : ''}`, s((await p.reached) - t1), note(done.ms));
    return done;
  };
  const applied = await both('  until the last Service is reached from a pod', vip(size), 'green-', () => kubewire(cluster, ['apply', '-f', file]), () => (size === 10_000 && mode === 'nftables' ? 'goal <= 15 s' : ''), true);
  line(`kubewire apply (${size * 2} objects)`, s(applied.ms));
  await both('one more Service: reached after its apply returns', vip(size + 1), 'green-', () => kubewire(cluster, ['apply', '-f', '-'], servicesManifest(size, size + 1, ips('green'))), (ms) => `goal <= 0.5 s (apply ${s(ms)})`);
  await both('an endpoint change: seen after its apply returns', vip(size), 'blue-', () => kubewire(cluster, ['apply', '-f', '-'], servicesManifest(size - 1, size, ips('blue')).split('---\n').slice(1).join('---\n')), (ms) => `goal <= 0.5 s (apply ${s(ms)})`);
  line('  daemon RSS', `${rssMB(cluster).toFixed(0)} MB`, size === 10_000 ? 'goal <= 500 MB' : '');
  line('  proxier of node 1 (its metrics)', await proxySyncSeconds(cluster));
  if (proxy) {
    line('  kubewire proxy of node 2: RSS', `${rssOf(proxy.pid!).toFixed(0)} MB`);
    line('  kubewire proxy of node 2 (its metrics)', await proxySyncSeconds(cluster, `${cluster}-node-2`));
    proxies.delete(proxy);
    proxy.kill('SIGTERM');
  }
  await down(cluster);
  clusters.delete(cluster);
}

async function pods(): Promise<void> {
  const cluster = `kwsp${NODES}`;
  clusters.add(cluster);
  console.log(`\n${PODS} pods over ${NODES} nodes`);
  await kubewire(cluster, ['up', '--nodes', String(NODES)]);
  const client = new ApiClient(daemonPaths(cluster).socket);
  const t0 = performance.now();
  await kubewire(cluster, ['apply', '-f', '-'], deployment('many', PODS));
  const running = await until(`${PODS} pods Running`, async () => (await client.list<Pod>(resourceNamed('pods')!, 'default')).items.filter((p) => p.status?.phase === 'Running' && p.status.podIP).length === PODS, 600_000);
  line(`apply -> ${PODS} pods Running with IPs`, s(running + (performance.now() - t0 - running)), 'goal <= 30 s');
  const gets: number[] = [];
  for (let i = 0; i < 3; i++) gets.push((await kubewire(cluster, ['get', 'pods', '-A'])).ms);
  line('kubewire get pods -A', gets.map(s).join(', '), 'goal <= 0.5 s');
  line('  daemon RSS', `${rssMB(cluster).toFixed(0)} MB`);
  await down(cluster);
  clusters.delete(cluster);
}

try {
  for (const mode of MODES) for (const size of SIZES) await services(mode, size);
  if (PODS > 0) await pods();
} finally {
  await cleanup();
}
