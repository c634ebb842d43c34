// The Kubernetes API as kubectl and client libraries meet it (issue 28's goals), through the
// user's path: the real kubectl 1.32 (or undici with the admin client certificate of the
// kubeconfig `up` merged) over HTTPS -> the API -> controllers -> the kernel's pods.
//  1. server-side apply of C ConfigMaps with `kubectl apply --server-side -f` against the same
//     manifest through `kubewire apply -f` (one request), C = 1k and 5k; client-side apply at 1k.
//  2. W watchers of pods over HTTPS (half plain JSON, half kubectl's Table Accept header) while
//     a Deployment of P pods starts: every watcher must see every event; meanwhile ordinary
//     requests (GET a pod, list by labelSelector) one after another, their p50/p99/max; beside
//     them, why they waited: the daemon's event loop during the burst (how late its timers ran,
//     per second, and how busy it was), from the lines it logs with KUBEWIRE_LOOP_STATS.
//  3. `kubectl get pods -A -o wide` with N real pods (those of step 2, scaled down: 1000, 500,
//     100), SETTLE_S after the pods are Running, median of RUNS, beside kubectl's own start
//     (`kubectl version --client`, no request) taken just before, and the server's part (the same list pages, with the same Accept header, over HTTPS).
// One cluster of NODES nodes (110 pods each) does all three, in this order (apply on a quiet
// cluster, the pods started once). Every loop is bounded in count and time; the cluster and
// the scratch files are removed even on failure.
//   npm run bench:api     RUNS=5 NODES=10 PODS=1000 WATCHERS=100 SIZES=1000,500,100 APPLY=1000,5000 SETTLE_S=10
import { spawn } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parse } from 'yaml';
import { down } from '../src/lifecycle/cluster.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { parseLoopStats } from '../src/daemon/loop-stats.ts';
import { daemonPaths } from '../src/state/paths.ts';

const KUBECTL = process.env.KUBECTL ?? '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
const RUNS = Number(process.env.RUNS) || 5;
const NODES = Number(process.env.NODES) || 10;
const PODS = Number(process.env.PODS) || 1000;
const WATCHERS = Number(process.env.WATCHERS) || 100;
const SIZES = (process.env.SIZES ?? '1000,500,100').split(',').filter(Boolean).map(Number);
const APPLY = (process.env.APPLY ?? '1000,5000').split(',').filter(Boolean).map(Number);
const SETTLE_MS = Number(process.env.SETTLE_S ?? 10) * 1000;
const START_TIMEOUT_MS = Number(process.env.START_TIMEOUT_S ?? 900) * 1000;
const CLUSTER = process.env.CLUSTER ?? 'kbapi';
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';

const scratch = mkdtempSync(join(tmpdir(), 'kwb-api-'));
process.env.KUBEWIRE_STATE_DIR = join(scratch, 'state');
process.env.KUBECONFIG = join(scratch, 'config');
process.env.KUBEWIRE_LOOP_STATS ??= '1'; // the daemon logs its event loop's delay each second (daemon/loop-stats.ts)
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
let clusterUp = false;
const agents: Agent[] = [];
const cleanup = async () => {
  await Promise.all(agents.map((a) => a.destroy().catch(() => undefined)));
  if (clusterUp) await down(CLUSTER).catch((e: Error) => console.error(`down ${CLUSTER}: ${e.message}`));
  clusterUp = false;
  rmSync(scratch, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const msf = (ms: number) => `${ms.toFixed(1)} ms`;
const load = () => `load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`;
const line = (what: string, value: string, note = '') => console.log(`${what.padEnd(60)}${value.padEnd(28)}${note}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const runs = (ms: number[]) => `${s(median(ms))} (${s(Math.min(...ms))}–${s(Math.max(...ms))})`;

interface Ran { ms: number; code: number; stdout: string; stderr: string }

/** A program as a user starts it, timed from spawn to exit, killed after timeoutMs. */
function run(file: string, args: string[], timeoutMs = 600_000): Promise<Ran> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: { ...process.env, HOME: scratch }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - t0, code: code ?? 137, stdout: Buffer.concat(out).toString(), stderr });
    });
  });
}
/** kubectl with the merged kubeconfig and a discovery cache of its own (warm after the first call, as a user's). */
const kubectl = (args: string[], timeoutMs?: number) => run(KUBECTL, ['--cache-dir', join(scratch, 'cache'), ...args], timeoutMs);
const kubewire = (args: string[], timeoutMs?: number) => run(process.execPath, [BIN, ...args, '--cluster', CLUSTER], timeoutMs);
async function ok(r: Promise<Ran>, what: string): Promise<Ran> {
  const done = await r;
  if (done.code !== 0) throw new Error(`${what} exited ${done.code}: ${(done.stderr || done.stdout).slice(0, 2000)}`);
  return done;
}

/** The API's address and the admin identity, read from the kubeconfig `up` merged. */
function credentials(): { server: string; connect: { ca: string; cert: string; key: string } } {
  const cfg = parse(readFileSync(process.env.KUBECONFIG!, 'utf8')) as { clusters: { name: string; cluster: Record<string, string> }[]; users: { name: string; user: Record<string, string> }[] };
  const name = `kubewire-${CLUSTER}`;
  const c = cfg.clusters.find((x) => x.name === name)!.cluster;
  const u = cfg.users.find((x) => x.name === name)!.user;
  const b64 = (v: string | undefined) => Buffer.from(v!, 'base64').toString();
  return { server: c.server!, connect: { ca: b64(c['certificate-authority-data']), cert: b64(u['client-certificate-data']), key: b64(u['client-key-data']) } };
}

let api: { server: string; connect: { ca: string; cert: string; key: string } };
function agent(): Agent {
  const a = new Agent({ connect: api.connect, bodyTimeout: 0, headersTimeout: 30_000 });
  agents.push(a);
  return a;
}

/** GET over HTTPS with the client certificate: its time and its body. */
async function get(dispatcher: Agent, path: string, accept = 'application/json'): Promise<{ ms: number; body: any; bytes: number }> {
  const t0 = performance.now();
  const res = await request(`${api.server}${path}`, { dispatcher, headers: { accept }, headersTimeout: 30_000, bodyTimeout: 60_000 });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
  return { ms: performance.now() - t0, body: JSON.parse(text), bytes: text.length };
}

const deployment = (name: string, replicas: number) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: default}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec: {containers: [{name: hello, image: hello, ports: [{containerPort: 8080}]}]}
`;

const configMap = (ns: string, i: number) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm-${i}`, namespace: ns, labels: { bench: 'api' } }, data: { index: String(i), greeting: 'hello' } });
function configMaps(ns: string, n: number): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) docs.push(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-${i}, namespace: ${ns}, labels: {bench: api}}\ndata: {index: "${i}", greeting: hello}\n`);
  return docs.join('---\n');
}

/** The requests kubectl apply --server-side sends, one after another, without kubectl: the server's part. */
async function serverApplies(a: Agent, ns: string, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const res = await request(`${api.server}/api/v1/namespaces/${ns}/configmaps/cm-${i}?fieldManager=kubectl&fieldValidation=Strict&force=false`, { dispatcher: a, method: 'PATCH', headers: { 'content-type': 'application/apply-patch+yaml', accept: 'application/json' }, body: JSON.stringify(configMap(ns, i)) });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`apply of ${ns}/cm-${i}: ${res.statusCode} ${text.slice(0, 200)}`);
  }
  return performance.now() - t0;
}

async function countIn(dispatcher: Agent, ns: string): Promise<number> {
  return (await get(dispatcher, `/api/v1/namespaces/${ns}/configmaps?labelSelector=bench%3Dapi`)).body.items.length;
}

/** 1. Server-side apply of C ConfigMaps: kubectl (a request per object) against kubewire's CLI (one request). */
async function applies(a: Agent): Promise<void> {
  console.log(`\nkubectl apply --server-side -f against kubewire apply -f (the same manifest of ConfigMaps, each into a fresh namespace), ${load()}`);
  const namespaces = APPLY.flatMap((n) => [`ssa-${n}`, `kw-${n}`, `nv-${n}`, `srv-${n}`]).concat(APPLY.includes(1000) ? ['csa-1000'] : []);
  for (const ns of namespaces) await ok(kubectl(['create', 'namespace', ns]), `create namespace ${ns}`);
  const got: Record<number, { ssa: number; kw: number }> = {};
  for (const n of APPLY) {
    const ssaFile = join(scratch, `ssa-${n}.yaml`);
    const kwFile = join(scratch, `kw-${n}.yaml`);
    writeFileSync(ssaFile, configMaps(`ssa-${n}`, n));
    writeFileSync(kwFile, configMaps(`kw-${n}`, n));
    const ssa = await ok(kubectl(['apply', '--server-side', '-f', ssaFile], 900_000), `kubectl apply --server-side (${n})`);
    const kw = await ok(kubewire(['apply', '-f', kwFile], 900_000), `kubewire apply (${n})`);
    const [cs, ck] = [await countIn(a, `ssa-${n}`), await countIn(a, `kw-${n}`)];
    if (cs !== n || ck !== n) throw new Error(`applied ${n} ConfigMaps but the API holds ${cs} (kubectl) and ${ck} (kubewire)`);
    got[n] = { ssa: ssa.ms, kw: kw.ms };
    line(`  ${n} ConfigMaps: kubectl apply --server-side`, s(ssa.ms), `${(n / (ssa.ms / 1000)).toFixed(0)} objects/s`);
    line(`  ${n} ConfigMaps: kubewire apply (one request)`, s(kw.ms), `kubectl/kubewire ${(ssa.ms / kw.ms).toFixed(1)}x, ${load()}`);
    // Where kubectl's time goes: 1.32 decodes the whole OpenAPI v3 document of the group
    // version for every object when it validates (kubernetes/kubernetes#127095, cached from
    // kubectl 1.34 by #132003); --validate=false skips that; the server's part is its PATCHes alone.
    const nvFile = join(scratch, `nv-${n}.yaml`);
    writeFileSync(nvFile, configMaps(`nv-${n}`, n));
    const nv = await ok(kubectl(['apply', '--server-side', '--validate=false', '-f', nvFile], 900_000), `kubectl apply --server-side --validate=false (${n})`);
    const srv = await serverApplies(a, `srv-${n}`, n);
    if ((await countIn(a, `nv-${n}`)) !== n || (await countIn(a, `srv-${n}`)) !== n) throw new Error(`--validate=false or the server's part: not ${n} ConfigMaps`);
    line(`    kubectl apply --server-side --validate=false`, s(nv.ms), `${(n / (nv.ms / 1000)).toFixed(0)} objects/s`);
    line(`    server's part: its ${n} PATCHes (apply-patch), one at a time`, s(srv), `${msf(srv / n)} each, ${load()}`);
  }
  if (got[1000] && got[5000]) line('  5k/1k growth: kubectl, kubewire', `${(got[5000].ssa / got[1000].ssa).toFixed(1)}x, ${(got[5000].kw / got[1000].kw).toFixed(1)}x`, 'linear is 5x');
  if (APPLY.includes(1000)) {
    const file = join(scratch, 'csa-1000.yaml');
    writeFileSync(file, configMaps('csa-1000', 1000));
    const csa = await ok(kubectl(['apply', '-f', file], 900_000), 'kubectl apply (client-side, 1000)');
    if ((await countIn(a, 'csa-1000')) !== 1000) throw new Error('client-side apply: not 1000 ConfigMaps');
    line('  1000 ConfigMaps: kubectl apply (client-side)', s(csa.ms), got[1000] ? `${(csa.ms / got[1000].ssa).toFixed(1)}x server-side` : '');
  }
}

interface Watcher { seen: Set<string>; events: number; bytes: number; reconnects: number; errors: string[]; table: boolean; lastRv: string }

/** One watch of all pods from `rv`, newline-delimited events recorded as TYPE name@rv; resumed from its last RV if the server ends it. */
async function watch(a: Agent, w: Watcher, stop: AbortSignal, onPod: (name: string, phase: string | undefined, ip: string | undefined) => void): Promise<void> {
  for (let attempt = 0; attempt < 20 && !stop.aborted; attempt++) {
    if (attempt > 0) w.reconnects++;
    try {
      const res = await request(`${api.server}/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=${w.lastRv}`, { dispatcher: a, signal: stop, headers: { accept: w.table ? TABLE : 'application/json' }, bodyTimeout: 0 });
      if (res.statusCode !== 200) throw new Error(`watch: ${res.statusCode} ${(await res.body.text()).slice(0, 200)}`);
      let rest = '';
      for await (const chunk of res.body) {
        w.bytes += chunk.length;
        rest += chunk.toString();
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const text = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (!text.trim()) continue;
          const e = JSON.parse(text) as { type: string; object: any };
          if (e.type === 'ERROR') throw new Error(`watch ERROR event: ${JSON.stringify(e.object).slice(0, 200)}`);
          const obj = w.table ? e.object.rows?.[0]?.object : e.object;
          const meta = e.type === 'BOOKMARK' ? e.object.metadata : obj?.metadata;
          if (meta?.resourceVersion) w.lastRv = meta.resourceVersion;
          if (e.type === 'BOOKMARK') continue;
          w.events++;
          w.seen.add(`${e.type} ${meta.namespace}/${meta.name}@${meta.resourceVersion}`);
          if (!w.table) onPod(`${meta.namespace}/${meta.name}`, e.type === 'DELETED' ? undefined : obj.status?.phase, obj.status?.podIP);
        }
      }
    } catch (e) {
      if (stop.aborted) return;
      w.errors.push((e as Error).message);
    }
  }
}

/** 2. W watchers while P pods start, ordinary requests meanwhile. Leaves the P pods running. */
async function watchers(): Promise<boolean> {
  console.log(`\n${WATCHERS} watchers of pods (half JSON, half Table) while a Deployment of ${PODS} pods starts on ${NODES} nodes, ${load()}`);
  const probes = agent();
  const initial = await get(probes, '/api/v1/pods');
  const dnsPod = initial.body.items.find((p: any) => p.metadata.labels?.['k8s-app'] === 'kube-dns').metadata;
  const stop = new AbortController();
  setMaxListeners(WATCHERS + 10, stop.signal);
  const running = new Set<string>();
  let lastEvent = 0;
  const list: Watcher[] = [];
  const watchAgents = Array.from({ length: Math.ceil(WATCHERS / 25) }, () => agent());
  const watches = Array.from({ length: WATCHERS }, (_, i) => {
    const w: Watcher = { seen: new Set(), events: 0, bytes: 0, reconnects: 0, errors: [], table: i % 2 === 1, lastRv: initial.body.metadata.resourceVersion };
    list.push(w);
    return watch(watchAgents[i % watchAgents.length]!, w, stop.signal, (name, phase, ip) => {
      lastEvent = performance.now();
      if (i !== 0 || !name.startsWith('default/')) return;
      if (phase === 'Running' && ip) running.add(name);
      else running.delete(name);
    });
  });
  // Ordinary requests, one after another, 20 ms apart: GET a pod, list by labelSelector.
  const latencies: number[] = [];
  const probeErrors: string[] = [];
  const probing = (async () => {
    for (let i = 0; i < 50_000 && !stop.signal.aborted; i++) {
      try {
        const path = i % 2 ? `/api/v1/namespaces/${dnsPod.namespace}/pods/${dnsPod.name}` : '/api/v1/pods?labelSelector=k8s-app%3Dkube-dns';
        latencies.push((await get(probes, path)).ms);
      } catch (e) {
        probeErrors.push((e as Error).message);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await new Promise((r) => setTimeout(r, 1000)); // the watches established
  const t0 = performance.now();
  const burstFrom = new Date().toISOString();
  writeFileSync(join(scratch, 'watched.yaml'), deployment('watched', PODS));
  await ok(kubectl(['apply', '-f', join(scratch, 'watched.yaml')]), 'kubectl apply of the Deployment');
  let started = true;
  while (running.size < PODS) {
    if (performance.now() - t0 > START_TIMEOUT_MS) { started = false; break; }
    await new Promise((r) => setTimeout(r, 500));
  }
  const startMs = performance.now() - t0;
  // Quiet: no event for 3 s (the last status writes delivered), at most 60 s more.
  const q0 = performance.now();
  while (performance.now() - lastEvent < 3000 && performance.now() - q0 < 60_000) await new Promise((r) => setTimeout(r, 250));
  const burstTo = new Date().toISOString();
  stop.abort();
  await Promise.all([...watches, probing]);
  const all = new Set<string>();
  for (const w of list) for (const k of w.seen) all.add(k);
  const missed = list.reduce((n, w) => n + (all.size - w.seen.size), 0);
  const delivered = list.reduce((n, w) => n + w.events, 0);
  const dupes = list.reduce((n, w) => n + (w.events - w.seen.size), 0);
  const span = lastEvent - t0;
  line(`  apply -> ${PODS} pods Running with IPs (watcher 0's view)`, started ? s(startMs) : `${running.size} of ${PODS} in ${s(startMs)}`, started ? '' : `NOT all started in ${s(START_TIMEOUT_MS)}`);
  line('  events per watcher (distinct), delivered to all', `${all.size}, ${delivered}`, `${(delivered / (span / 1000)).toFixed(0)} events/s over ${s(span)}, ${(list.reduce((n, w) => n + w.bytes, 0) / 1e6).toFixed(0)} MB`);
  line('  missed events (sum over watchers)', String(missed), `goal 0; duplicates ${dupes}, reconnects ${list.reduce((n, w) => n + w.reconnects, 0)}`);
  const errors = list.flatMap((w) => w.errors);
  if (errors.length) line('  watch errors', String(errors.length), errors[0]!.slice(0, 120));
  const sorted = [...latencies].sort((a, b) => a - b);
  line(`  ordinary requests meanwhile (${sorted.length}): p50 / p99 / max`, `${msf(pct(sorted, 50))} / ${msf(pct(sorted, 99))} / ${msf(sorted.at(-1)!)}`, `goal p99 <= 100 ms${probeErrors.length ? `; ${probeErrors.length} failed: ${probeErrors[0]!.slice(0, 80)}` : ''}; ${load()}`);
  loopDuring(burstFrom, burstTo);
  return started;
}

/**
 * Why requests waited: the daemon's event loop during the burst, from the lines it logs each
 * second (KUBEWIRE_LOOP_STATS): how late its timers ran (the wait before any request's turn)
 * and how busy it was.
 */
function loopDuring(from: string, to: string): void {
  let text = '';
  try {
    text = readFileSync(daemonPaths(CLUSTER).log, 'utf8');
  } catch {
    return;
  }
  const seconds = parseLoopStats(text).filter((x) => x.at >= from && x.at <= to);
  if (!seconds.length) return line("  daemon's event loop during the burst", 'no data', 'its log has no event loop lines (KUBEWIRE_LOOP_STATS)');
  const p99s = seconds.map((x) => x.p99).sort((a, b) => a - b);
  const busy = seconds.reduce((n, x) => n + x.utilization, 0) / seconds.length;
  line("  daemon's event loop during the burst: delay p99 (median / worst second), max", `${msf(median(p99s))} / ${msf(p99s.at(-1)!)}, ${msf(Math.max(...seconds.map((x) => x.max)))}`, `busy ${(busy * 100).toFixed(0)}% of ${seconds.length} s`);
}

/** The pages kubectl asks for (limit=500, then continue), with its Accept header: the server's part of a get. */
async function serverList(a: Agent): Promise<{ ms: number; bytes: number; rows: number }> {
  const t0 = performance.now();
  let cont = '';
  let bytes = 0;
  let rows = 0;
  for (let page = 0; page < 100; page++) {
    const r = await get(a, `/api/v1/pods?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`, TABLE);
    bytes += r.bytes;
    rows += r.body.rows.length;
    cont = r.body.metadata?.continue ?? '';
    if (!cont) break;
  }
  return { ms: performance.now() - t0, bytes, rows };
}

async function podsIn(a: Agent, selector: string): Promise<any[]> {
  return (await get(a, `/api/v1/namespaces/default/pods?labelSelector=${encodeURIComponent(selector)}`)).body.items;
}

/** 3. `kubectl get pods -A -o wide` with N pods of the Deployment, scaled to each size. */
async function gets(realPods: boolean): Promise<void> {
  console.log(`\nkubectl get pods -A -o wide (median of ${RUNS}, process start to exit), ${load()}`);
  const a = agent();
  for (const n of SIZES) {
    await ok(kubectl(['scale', 'deployment/watched', `--replicas=${n}`]), 'kubectl scale');
    const t0 = performance.now();
    for (;;) {
      const pods = await podsIn(a, 'app=watched');
      const ready = pods.filter((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp).length;
      if (pods.length === n && (ready === n || !realPods)) break;
      if (performance.now() - t0 > START_TIMEOUT_MS) throw new Error(`scaled to ${n}: ${pods.length} pods, ${ready} Running after ${s(START_TIMEOUT_MS)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    await new Promise((r) => setTimeout(r, SETTLE_MS)); // the last status writes of a start or a scale-down done
    const floor: number[] = [];
    for (let i = 0; i < RUNS; i++) floor.push((await ok(kubectl(['version', '--client', '-o', 'json']), 'kubectl version')).ms);
    line('  reference: kubectl version --client (its start, no request)', runs(floor));
    const times: number[] = [];
    let printed = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await ok(kubectl(['get', 'pods', '-A', '-o', 'wide']), 'kubectl get pods -A -o wide');
      times.push(r.ms);
      printed = r.stdout.split('\n').filter((l) => l.startsWith('default ') && l.includes(' watched-')).length;
    }
    if (printed !== n) throw new Error(`kubectl printed ${printed} rows of the Deployment's pods, not ${n}`);
    const server: { ms: number; bytes: number; rows: number }[] = [];
    for (let i = 0; i < RUNS; i++) server.push(await serverList(a));
    const sm = server.map((x) => x.ms);
    line(`  ${n} pods${realPods ? ' (Running)' : ' (in the API, not all Running)'}: kubectl get pods -A -o wide`, runs(times), `goal <= 0.5 s; ${(median(times) / median(floor)).toFixed(1)}x the reference; ${load()}`);
    line(`    server's part: GET /api/v1/pods?limit=500.. as Table`, `${msf(median(sm))} (${msf(Math.min(...sm))}–${msf(Math.max(...sm))})`, `${server[0]!.rows} rows, ${(server[0]!.bytes / 1e6).toFixed(1)} MB`);
  }
}

try {
  console.log(`bench:api: ${CLUSTER}, ${NODES} nodes, kubectl ${KUBECTL}, ${load()}`);
  clusterUp = true; // down even if interrupted during up
  const up = await kubewire(['up', '--nodes', String(NODES)], 600_000);
  if (up.code !== 0) throw new Error(`up: ${up.stderr || up.stdout}`);
  api = credentials();
  if (APPLY.length) await applies(agent());
  const started = await watchers();
  if (SIZES.length) await gets(started);
  console.log(`\ndone, ${load()}`);
} catch (e) {
  console.error(`bench:api failed: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
