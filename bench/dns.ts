// Cluster DNS throughput and latency (issue 16's goals), as a user would measure them:
// dnsperf (Debian's) in a pod of a two-node cluster queries a mix of Service, headless and
// NXDOMAIN names — at the kube-dns VIP (the path every pod takes: the proxy spreads queries
// over both DNS pods), at one DNS pod, and at dnsmasq (the C reference) running in a pod of
// the same cluster, answering the same names from a hosts file. Runs alternate (dnsmasq, ours,
// ours, dnsmasq; best of each). Latency percentiles come from a rate-limited run (dnsperf -v
// reports each query). Then how long a new Service takes to resolve after `kubewire apply`.
//   npm run bench:dns      SERVICES=1000 (ClusterIP Services)  DURATION=8 (s per run)  CLIENTS=8

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SERVICES = Number(process.env.SERVICES) || 1000;
const HEADLESS = 50;
const DURATION = Number(process.env.DURATION) || 8;
const CLIENTS = Number(process.env.CLIENTS) || 8;
/** The rate of the latency runs: a busy cluster's DNS load, well under either server's ceiling. */
const LATENCY_QPS = 500;
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const stateDir = mkdtempSync(join(tmpdir(), 'kwb-dns-'));
const work = mkdtempSync(join(tmpdir(), 'kwb-dns-files-'));
const cluster = `kwbd${process.pid % 10000}`;

function kw(args: string[], input?: string, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, KUBEWIRE_STATE_DIR: stateDir, KUBECONFIG: join(stateDir, 'kubeconfig'), KUBEWIRE_CLUSTER: cluster };
    delete env.NODE_EXTRA_CA_CERTS;
    const child = execFile(process.execPath, [BIN, ...args], { env, timeout: timeoutMs, maxBuffer: 256 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`kubewire ${args.slice(0, 4).join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
    child.stdin!.end(input ?? '');
  });
}

const svcIP = (i: number) => `10.96.${100 + (i >> 8)}.${i & 255}`;

function manifests(): string {
  const docs: string[] = [];
  for (let i = 0; i < SERVICES; i++) docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${i}}\nspec: {clusterIP: ${svcIP(i)}, ports: [{name: http, port: 80}]}`);
  for (let h = 0; h < HEADLESS; h++) {
    docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: hl-${h}}\nspec: {clusterIP: None, ports: [{name: http, port: 80}]}`);
    const eps = Array.from({ length: 5 }, (_, e) => `  - addresses: ["10.244.${100 + h}.${e + 1}"]\n    conditions: {ready: true}`).join('\n');
    docs.push(`apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: hl-${h}-1, labels: {kubernetes.io/service-name: hl-${h}}}\naddressType: IPv4\nports: [{name: http, port: 80, protocol: TCP}]\nendpoints:\n${eps}`);
  }
  return `${docs.join('\n---\n')}\n`;
}

/** 60% Service names, 20% headless, 20% names that do not exist. */
function queries(): string {
  const lines: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    const r = i % 10;
    if (r < 6) lines.push(`svc-${(i * 7919) % SERVICES}.default.svc.cluster.local A`);
    else if (r < 8) lines.push(`hl-${(i * 31) % HEADLESS}.default.svc.cluster.local A`);
    else lines.push(`missing-${i}.default.svc.cluster.local A`);
  }
  return `${lines.join('\n')}\n`;
}

/** The same names for dnsmasq: an address line per record. */
function hostsFile(): string {
  const lines: string[] = [];
  for (let i = 0; i < SERVICES; i++) lines.push(`${svcIP(i)} svc-${i}.default.svc.cluster.local`);
  for (let h = 0; h < HEADLESS; h++) for (let e = 0; e < 5; e++) lines.push(`10.244.${100 + h}.${e + 1} hl-${h}.default.svc.cluster.local`);
  return `${lines.join('\n')}\n`;
}

interface Perf {
  qps: number;
  avgMs: number;
  lost: number;
}

async function dnsperf(server: string, extra: string[] = []): Promise<string> {
  return kw(['exec', 'client', '--', 'dnsperf', '-s', server, '-d', join(work, 'queries.txt'), '-l', String(DURATION), '-c', String(CLIENTS), '-q', '500', '-t', '2', ...extra], undefined, (DURATION + 30) * 1000);
}

function parsePerf(out: string): Perf {
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]);
  const avg = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1]) * 1000;
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (!qps) throw new Error(`no dnsperf summary:\n${out}`);
  return { qps, avgMs: avg, lost };
}

/** p50 and p99 of a rate-limited run, from dnsperf -v's per-query latencies. */
async function latency(server: string): Promise<{ p50: number; p99: number }> {
  const out = await dnsperf(server, ['-Q', String(LATENCY_QPS), '-v']);
  const samples = [...out.matchAll(/^> \S+ .* ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  if (samples.length < 100) throw new Error(`too few latency samples (${samples.length}):\n${out.slice(0, 2000)}`);
  return { p50: samples[Math.floor(samples.length * 0.5)]!, p99: samples[Math.floor(samples.length * 0.99)]! };
}

try {
  console.log(`cluster DNS vs dnsmasq: dnsperf in a pod, ${SERVICES} Services + ${HEADLESS} headless (5 endpoints each); 60% Service, 20% headless, 20% NXDOMAIN names; ${DURATION} s per run, ${CLIENTS} clients\n`);
  await kw(['up', '--nodes', '2']);
  writeFileSync(join(work, 'queries.txt'), queries());
  writeFileSync(join(work, 'hosts'), hostsFile());
  const t0 = performance.now();
  await kw(['apply', '-f', '-'], manifests());
  console.log(`applied ${SERVICES + HEADLESS} Services in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await kw(['apply', '-f', '-'], `apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: dnsmasq}
spec:
  dnsPolicy: Default
  containers:
  - name: dnsmasq
    image: dnsmasq
    command: [dnsmasq, --keep-in-foreground, --user=root, --no-resolv, --no-hosts, --addn-hosts=${join(work, 'hosts')}, --local=/cluster.local/, --cache-size=10000, --no-negcache, --log-facility=-]
`);
  await kw(['rollout', 'status', '-n', 'kube-system', 'deployment/coredns', '--timeout', '60s']);
  await kw(['wait', '--for=condition=Ready', 'pod/client', 'pod/dnsmasq', '--timeout', '60s']);
  const pods = JSON.parse(await kw(['get', 'pods', '-A', '-o', 'json'])) as { items: Array<{ metadata: { name: string; namespace: string }; status: { podIP: string } }> };
  const dnsmasqIP = pods.items.find((p) => p.metadata.name === 'dnsmasq')!.status.podIP;
  const corednsIP = pods.items.find((p) => p.metadata.namespace === 'kube-system' && p.metadata.name.startsWith('coredns'))!.status.podIP;
  // Both answer before the runs (a wrong setup would measure errors).
  for (const server of [dnsmasqIP, '10.96.0.10']) {
    const a = await kw(['exec', 'client', '--', 'dig', '+short', `@${server}`, 'svc-1.default.svc.cluster.local']);
    if (a.trim() !== svcIP(1)) throw new Error(`${server} answered ${JSON.stringify(a)} for svc-1`);
  }

  const runs: Record<string, Perf[]> = { dnsmasq: [], vip: [], pod: [] };
  for (const [label, server] of [['dnsmasq', dnsmasqIP], ['vip', '10.96.0.10'], ['pod', corednsIP], ['pod', corednsIP], ['vip', '10.96.0.10'], ['dnsmasq', dnsmasqIP]] as const) {
    runs[label]!.push(parsePerf(await dnsperf(server)));
  }
  const best = (l: string) => runs[l]!.reduce((a, b) => (b.qps > a.qps ? b : a));
  const lat = { dnsmasq: await latency(dnsmasqIP), vip: await latency('10.96.0.10') };
  const ref = best('dnsmasq');
  const row = (cells: string[]) => console.log(cells.map((c, i) => c.padEnd([38, 12, 12, 12, 8, 10][i] ?? 10)).join(''));
  row(['server', 'queries/s', 'vs dnsmasq', 'avg (load)', 'lost', `p50 / p99 at ${LATENCY_QPS} q/s`]);
  row(['dnsmasq (one process, C)', ref.qps.toFixed(0), '1.00x', `${ref.avgMs.toFixed(2)} ms`, String(ref.lost), `${lat.dnsmasq.p50.toFixed(2)} / ${lat.dnsmasq.p99.toFixed(2)} ms`]);
  for (const [label, name] of [['vip', 'kube-dns VIP (2 pods, via the proxy)'], ['pod', 'one kubewire DNS pod']] as const) {
    const b = best(label);
    row([name, b.qps.toFixed(0), `${(b.qps / ref.qps).toFixed(2)}x`, `${b.avgMs.toFixed(2)} ms`, String(b.lost), label === 'vip' ? `${lat.vip.p50.toFixed(2)} / ${lat.vip.p99.toFixed(2)} ms` : '']);
  }

  // A new Service: from the start of `kubewire apply` to its first answer in the pod (dig every 20 ms there).
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    const name = `new-${i}`;
    const poll = kw(['exec', 'client', '--', 'sh', '-c', `s=$(date +%s%N); while ! dig +short +time=1 @10.96.0.10 ${name}.default.svc.cluster.local | grep -q .; do sleep 0.02; done; echo $s $(date +%s%N)`], undefined, 30_000);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await kw(['apply', '-f', '-'], `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {ports: [{port: 80}]}\n`);
    const [, end] = (await poll).trim().split(' ').map(Number);
    delays.push(end! / 1e6 - started);
  }
  delays.sort((a, b) => a - b);
  console.log(`\na new Service resolves ${delays.map((d) => `${d.toFixed(0)}`).join(', ')} ms after \`kubewire apply\` starts (goal ≤ 1000 ms; the apply command itself included)`);
} finally {
  await kw(['down']).catch((e: Error) => console.error(e.message));
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
