// Issue 27's attacks on the cluster DNS, each run by one pod against one DNS pod of a
// two-node cluster for DURATION seconds, while another pod measures normal queries to the
// same DNS pod and this process samples the DNS pod's RSS (/proc/PID/status of the pod's
// dns-server process, its pid from the node agent's record of the pod).
//
// The measuring pod does nothing else: dnsperf (C) sends RATE queries a second and writes
// each latency to a file (no output through a pipe while it runs), and tcpdump takes the
// kernel's timestamp (ns) of every query leaving the pod's eth0 and every answer arriving:
// the figure is the answer's time as the client pod's network sees it, without the client
// process's own wait for the CPU (dnsperf's view is printed beside it). At the same moment,
// the same client queries dnsmasq (C, answering the same names from a hosts file) at the same
// rate in the DNS pod's own network namespace (port 5353): the floor this machine gives a DNS
// server on that path, in the same run, row by row. The attacks:
//   pipeline   TCP connections that pipeline queries as fast as the server takes them and
//              never read an answer (reconnecting when closed)
//   slowloris  1,500 TCP connections, each sending one byte every 7 s (reopened when closed)
//   qtypes     all 65,536 query types, twice, over UDP, then random types, with a /metrics
//              scrape every 2 s (its time and size)
// Printed beside the goals (RSS < 150 MB, p99 ≤ 2 ms), the reference without attack (before
// and after, as long as an attack) and CoreDNS's documented limits. Each row is printed when
// it is measured; every command in a pod runs under timeout(1), and a command that outlives
// its bound is killed with its whole process group (a pod's process kept the pipe open).
//   npm run bench:dns-abuse      DURATION=60 (s per attack)  RATE=200 (normal queries/s)
//     ATTACKS=pipeline,qtypes (a subset)  QTYPES_RATE=N[,N...] (the flood's queries/s, a row each;
//     0, the default: as fast as the attacker sends)  DNS_ENV=NAME=VALUE,... (the DNS pods' environment:
//     KUBEWIRE_DNS_UDP_THREAD=0 serves UDP on the main thread, as before src/dns/udp-thread.ts)  CLUSTER=name (default kwba<pid>)  PROFILE=FILE (the DNS process's
//     profile, on for the whole run, a line a second: loop delay, GC, CPU, queries read/dropped/answered,
//     in-process p50/p99/max; src/dns/profile.ts: written to FILE with each row's start)
// Beside each row: the DNS process's CPU (% of one core) and its UDP socket's largest Recv-Q
// and drops (/proc/PID/net/udp, read in its network namespace), the attacker's CPU, the load.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { down } from '../src/lifecycle/cluster.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';

const DURATION = Number(process.env.DURATION) || 60;
const RATE = Number(process.env.RATE) || 200;
const SERVICES = 200;
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const stateDir = mkdtempSync(join(tmpdir(), 'kwb-dnsabuse-'));
const work = mkdtempSync(join(tmpdir(), 'kwb-dnsabuse-files-'));
const cluster = process.env.CLUSTER || `kwba${process.pid % 10000}`;
const ONLY = process.env.ATTACKS?.split(',');
const QTYPES_RATES = (process.env.QTYPES_RATE ?? '0').split(',').map(Number);
process.env.KUBEWIRE_STATE_DIR = stateDir; // for down() in this process
process.env.KUBECONFIG = join(stateDir, 'kubeconfig'); // the context up merges: ours, never ~/.kube/config
/** DNS_ENV=NAME=VALUE[,NAME=VALUE...]: set in the DNS pods' container. */
const DNS_ENV = (process.env.DNS_ENV ?? '').split(',').filter(Boolean).map((kv) => ({ name: kv.split('=')[0]!, value: kv.split('=').slice(1).join('=') }));
const GOAL_RSS_MB = 150;
const GOAL_P99_MS = 2;

/**
 * Runs the CLI; after `timeoutMs` its whole process group is killed (what it started in a pod
 * too: a grandchild holding the pipe would otherwise keep this waiting for ever).
 */
function kw(args: string[], input?: string, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, KUBEWIRE_STATE_DIR: stateDir, KUBEWIRE_CLUSTER: cluster };
    const child = spawn(process.execPath, [BIN, ...args], { env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString();
      if (timedOut) reject(new Error(`kubewire ${args.slice(0, 4).join(' ')}: killed after ${timeoutMs / 1000} s\n${stderr}`));
      else if (code !== 0) reject(new Error(`kubewire ${args.slice(0, 4).join(' ')}: ${stderr || `exit ${code}`}`));
      else resolve(Buffer.concat(out).toString());
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}
const cleanup = async () => {
  await down(cluster).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

/** The attacks, as scripts the attacker pod runs with node (CommonJS, no dependencies); each prints one JSON line. */
const ATTACKS: Record<string, string> = {
  pipeline: `
const net = require('net');
const [ip, seconds] = [process.argv[2], Number(process.argv[3])];
require('fs').writeFileSync(process.argv[1] + '.pid', String(process.pid));
const q = (i) => { const n = 'svc-' + (i % ${SERVICES}) + '.default.svc.cluster.local'; const b = Buffer.alloc(12 + n.length + 2 + 4); b.writeUInt16BE(i & 0xffff, 0); b[2] = 1; b.writeUInt16BE(1, 4); let o = 12; for (const l of n.split('.')) { b[o++] = l.length; b.write(l, o, 'latin1'); o += l.length; } b[o++] = 0; b.writeUInt16BE(1, o); b.writeUInt16BE(1, o + 2); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]); };
const block = Buffer.concat(Array.from({ length: 2000 }, (_, i) => q(i)));
const end = Date.now() + seconds * 1000; let sent = 0, closed = 0, lives = [];
// Closed by the server: before the attack's end (at the end the attacker closes its own).
function one() { if (Date.now() >= end) return; const t0 = Date.now(); const s = net.connect(53, ip); s.pause(); s.on('error', () => {});
  const more = () => { while (!s.destroyed && Date.now() < end) { sent += block.length; if (!s.write(block)) return void s.once('drain', more); } };
  s.on('connect', more); s.on('close', () => { if (Date.now() < end - 100) { closed++; lives.push(Date.now() - t0); setTimeout(one, 50); } }); setTimeout(() => s.destroy(), Math.max(0, end - Date.now())); }
for (let i = 0; i < 4; i++) one();
setTimeout(() => { lives.sort((a, b) => a - b); console.log(JSON.stringify({ sentMB: sent / 1e6, closedByServer: closed, medianLifeMs: lives[Math.floor(lives.length / 2)] ?? null })); process.exit(0); }, seconds * 1000 + 500);
`,
  slowloris: `
const net = require('net');
const [ip, seconds] = [process.argv[2], Number(process.argv[3])];
require('fs').writeFileSync(process.argv[1] + '.pid', String(process.pid));
// A framed query, sent a byte at a time.
const frame = Buffer.from('0031000101000001000000000000057376632d310764656661756c740373766307636c7573746572056c6f63616c0000010001', 'hex');
const end = Date.now() + seconds * 1000; let open = 0, maxOpen = 0, closes = 0, lives = [], samples = [];
function one() { if (Date.now() >= end) return; const t0 = Date.now(); const s = net.connect(53, ip); let up = false, i = 0; s.on('error', () => {});
  const drip = setInterval(() => s.write(frame.subarray(i, ++i)), 7000);
  s.on('connect', () => { up = true; open++; maxOpen = Math.max(maxOpen, open); s.write(frame.subarray(i, ++i)); });
  s.on('close', () => { clearInterval(drip); if (up) open--; closes++; lives.push(Date.now() - t0); if (Date.now() < end) setTimeout(one, 100); }); }
let started = 0; const opener = setInterval(() => { for (let i = 0; i < 100 && started < 1500; i++, started++) one(); if (started >= 1500) clearInterval(opener); }, 20);
const sampler = setInterval(() => samples.push(open), 1000);
setTimeout(() => { clearInterval(sampler); lives.sort((a, b) => a - b); samples.sort((a, b) => a - b); console.log(JSON.stringify({ maxOpen, medianOpen: samples[Math.floor(samples.length / 2)] ?? 0, closes, medianLifeMs: lives[Math.floor(lives.length / 2)] ?? null })); process.exit(0); }, seconds * 1000);
`,
  qtypes: `
const dgram = require('dgram'); const http = require('http');
const [ip, seconds] = [process.argv[2], Number(process.argv[3])];
require('fs').writeFileSync(process.argv[1] + '.pid', String(process.pid));
const s = dgram.createSocket('udp4'); s.on('message', () => {});
const name = 'svc-1.default.svc.cluster.local';
const q = (t, id) => { const b = Buffer.alloc(12 + name.length + 2 + 4); b.writeUInt16BE(id, 0); b[2] = 1; b.writeUInt16BE(1, 4); let o = 12; for (const l of name.split('.')) { b[o++] = l.length; b.write(l, o, 'latin1'); o += l.length; } b[o++] = 0; b.writeUInt16BE(t, o); b.writeUInt16BE(1, o + 2); return b; };
const rate = Number(process.argv[4]) || 0; const t0 = Date.now();
const end = Date.now() + seconds * 1000; let sent = 0; const scrapes = [];
// Paced at rate/s when given (checked every 200 queries), else as fast as sends complete.
async function send() { for (let n = 0; Date.now() < end; n++) { const t = n < 131072 ? n & 0xffff : Math.floor(Math.random() * 65536); await new Promise((r) => s.send(q(t, n & 0xffff), 53, ip, r)); sent++; if (n % 200 === 199) { const ahead = rate ? t0 + (sent / rate) * 1000 - Date.now() : 0; await new Promise((r) => setTimeout(r, Math.max(5, ahead))); } } }
// A scrape that takes over 10 s is abandoned (http's timeout option alone only reports it).
function scrape() { if (Date.now() >= end) return; const t0 = Date.now(); let size = 0; const req = http.get({ host: ip, port: 9153, path: '/metrics' }, (res) => { res.on('data', (c) => (size += c.length)); res.on('end', () => { scrapes.push({ ms: Date.now() - t0, bytes: size }); setTimeout(scrape, 2000); }); }); req.setTimeout(10000, () => req.destroy(new Error('timeout'))); req.on('error', () => setTimeout(scrape, 2000)); }
setTimeout(scrape, 2000);
send().then(() => setTimeout(() => { const ms = scrapes.map((x) => x.ms).sort((a, b) => a - b); console.log(JSON.stringify({ queriesSent: sent, scrapes: scrapes.length, scrapeMaxMs: ms[ms.length - 1] ?? null, scrapeMaxBytes: Math.max(0, ...scrapes.map((x) => x.bytes)) })); process.exit(0); }, 500));
`,
};

/** What CoreDNS documents for each attack, printed beside the figures. */
const COREDNS: Record<string, string> = {
  pipeline: 'CoreDNS: write timeout 5 s (core/dnsserver/server.go), a goroutine per connection blocks on the write: nothing queued',
  slowloris: 'CoreDNS: read 3 s, idle 10 s (core/dnsserver/server.go); no cap on plain TCP connections (gRPC: 200)',
  qtypes: 'CoreDNS: 19 query types by name, the rest `other` (plugin/metrics/vars/monitor.go)',
};

/**
 * The pid of a pod's first container's process, from the node agent's record of the pod
 * (<state>/<cluster>/nodes/<node>/pods/<namespace>_<name>_<uid>/pod.json). No scan of /proc:
 * reading another process's cmdline waits for its memory map's lock, and one busy process
 * (a user-mode kernel's) held the whole bench up.
 */
function podPid(namespace: string, name: string): number {
  const nodes = join(stateDir, cluster, 'nodes');
  for (const node of readdirSync(nodes)) {
    const pods = join(nodes, node, 'pods');
    if (!existsSync(pods)) continue;
    for (const dir of readdirSync(pods).filter((d) => d.startsWith(`${namespace}_${name}_`))) {
      const rec = JSON.parse(readFileSync(join(pods, dir, 'pod.json'), 'utf8')) as { containers?: Record<string, { process?: { pid?: number } }> };
      const pid = Object.values(rec.containers ?? {})[0]?.process?.pid;
      if (pid) return pid;
    }
  }
  throw new Error(`no process recorded for pod ${namespace}/${name} under ${nodes}`);
}

const rssMB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** User + system CPU seconds of `pid` so far (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** The UDP socket on port 53 in `pid`'s network namespace: bytes waiting (Recv-Q) and datagrams dropped so far. */
function udp53(pid: number): { rxq: number; drops: number } {
  for (const line of readFileSync(`/proc/${pid}/net/udp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(':0035')) return { rxq: parseInt(f[4]!.split(':')[1]!, 16), drops: Number(f[12]) };
  }
  return { rxq: 0, drops: 0 };
}

/** A pid the process wrote to `file` when it started (the attack scripts, dnsmasq), undefined until then. */
function pidIn(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

interface Sample {
  max: number;
  last: number;
  cpu: number;
  rxqMax: number;
  drops: number;
  attackerCpu: number;
  refCpu: number;
  load: number;
}

/** Samples `pid` every 200 ms until stopped: RSS (largest, last), CPU (% of a core), its UDP socket, the attacker's and dnsmasq's CPU, the load. */
function sample(pid: number, attackerPidFile?: string): () => Sample {
  let max = rssMB(pid);
  let last = max;
  let rxqMax = 0;
  const t0 = performance.now();
  const cpu0 = cpuSeconds(pid);
  const ref = pidIn(refPidFile);
  const refCpu0 = ref ? cpuSeconds(ref) : NaN;
  const drops0 = udp53(pid).drops;
  let drops = drops0;
  let attacker: { pid: number; cpu0: number; cpu: number } | undefined;
  const timer = setInterval(() => {
    try {
      last = rssMB(pid);
      max = Math.max(max, last);
      const u = udp53(pid);
      rxqMax = Math.max(rxqMax, u.rxq);
      drops = u.drops;
    } catch {
      last = NaN; // the process is gone: a crash, reported as such
    }
    try {
      const a = attackerPidFile && !attacker ? pidIn(attackerPidFile) : undefined;
      if (a) attacker = { pid: a, cpu0: cpuSeconds(a), cpu: cpuSeconds(a) };
      else if (attacker) attacker.cpu = cpuSeconds(attacker.pid);
    } catch {
      // the attacker ended
    }
  }, 200);
  return () => {
    clearInterval(timer);
    const seconds = (performance.now() - t0) / 1000;
    const pct = (now: () => number, before: number) => {
      try {
        return ((now() - before) / seconds) * 100;
      } catch {
        return NaN; // gone
      }
    };
    return { max, last, cpu: pct(() => cpuSeconds(pid), cpu0), rxqMax, drops: drops - drops0, attackerCpu: attacker ? ((attacker.cpu - attacker.cpu0) / seconds) * 100 : NaN, refCpu: ref ? pct(() => cpuSeconds(ref), refCpu0) : NaN, load: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) };
  };
}

interface Spread {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

/** p50, p99 and max of `ms` (pure). */
function spread(ms: number[]): Spread {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN, n: s.length };
}

/**
 * Round trips seen on the wire, from a pcap of the client pod's eth0 (pure): each query (a
 * datagram to port 53 or REF_PORT) paired with its answer by server port, client port and DNS
 * ID; per server port, the round trips in ms (kernel timestamps) and the queries sent.
 */
export function wireTimes(pcap: Buffer): Map<number, { rtts: number[]; queries: number }> {
  const magic = pcap.readUInt32LE(0);
  const scale = magic === 0xa1b23c4d ? 1e-6 : magic === 0xa1b2c3d4 ? 1e-3 : NaN; // ns or µs to ms
  if (Number.isNaN(scale) || pcap.readUInt32LE(20) !== 1) throw new Error('not a little-endian Ethernet pcap');
  const sent = new Map<string, number>();
  const out = new Map<number, { rtts: number[]; queries: number }>();
  const of = (port: number) => out.get(port) ?? out.set(port, { rtts: [], queries: 0 }).get(port)!;
  for (let o = 24; o + 16 <= pcap.length; ) {
    const t = pcap.readUInt32LE(o) * 1000 + pcap.readUInt32LE(o + 4) * scale;
    const len = pcap.readUInt32LE(o + 8);
    const p = pcap.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    if (p.length < 14 + 20 + 8 + 4 || p.readUInt16BE(12) !== 0x0800 || p[14 + 9] !== 17) continue;
    const u = 14 + (p[14]! & 0x0f) * 4;
    if (p.length < u + 12) continue;
    const [sport, dport, id, qr] = [p.readUInt16BE(u), p.readUInt16BE(u + 2), p.readUInt16BE(u + 8), p[u + 10]! & 0x80];
    if (!qr && (dport === 53 || dport === REF_PORT)) {
      sent.set(`${dport}:${sport}:${id}`, t);
      of(dport).queries++;
    } else if (qr && (sport === 53 || sport === REF_PORT)) {
      const key = `${sport}:${dport}:${id}`;
      const t0 = sent.get(key);
      if (t0 === undefined) continue;
      sent.delete(key);
      of(sport).rtts.push(t - t0);
    }
  }
  return out;
}

/** dnsmasq's port in the DNS pod's network namespace, and where it writes its pid. */
const REF_PORT = 5353;
const refPidFile = join(work, 'dnsmasq.pid');

interface Measured {
  wire: Spread & { lost: number };
  ref: Spread & { lost: number };
  client: Spread;
}

/**
 * Normal queries for `seconds` from the measuring pod, to our DNS pod (port 53) and to
 * dnsmasq beside it (REF_PORT), RATE/s each, with tcpdump's timestamps; bounded in the pod
 * by timeout(1) and here by kw's.
 */
async function measure(ip: string, seconds: number, tag: string): Promise<Measured> {
  const [cap, ours, ref, queries] = [`${tag}.pcap`, `${tag}-ours.txt`, `${tag}-ref.txt`, 'queries.txt'].map((f) => join(work, f)) as [string, string, string, string];
  const perf = (port: number, file: string) => `dnsperf -s ${ip} -p ${port} -d ${queries} -l ${seconds} -Q ${RATE} -t 2 -v > ${file} 2>&1`;
  const script = [`tcpdump -i eth0 -n -s 128 --time-stamp-precision=nano -w ${cap} udp and host ${ip} 2>/dev/null & t=$!`, 'sleep 1', `${perf(REF_PORT, ref)} & d=$!`, perf(53, ours), 'wait $d', 'sleep 0.5', 'kill -INT $t', 'wait $t'].join('\n');
  await kw(['exec', 'client', '--', 'timeout', '-k', '5', String(seconds + 30), 'sh', '-c', script], undefined, (seconds + 45) * 1000);
  const wire = wireTimes(readFileSync(cap));
  const [oursOut, refOut] = [readFileSync(ours, 'utf8'), readFileSync(ref, 'utf8')];
  const client = [...oursOut.matchAll(/^> \S+ .* ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000);
  // Lost: what dnsperf never had answered (tcpdump may miss packets of its own under load: its pairs time, dnsperf counts).
  const of = (port: number, out: string) => {
    const w = wire.get(port) ?? { rtts: [], queries: 0 };
    if (w.rtts.length < 10) throw new Error(`too few answers on the wire from port ${port} (${w.rtts.length} of ${w.queries} queries)`);
    return { ...spread(w.rtts), lost: Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN) };
  };
  return { wire: of(53, oursOut), ref: of(REF_PORT, refOut), client: spread(client) };
}

/** Starts a long command in a pod, in a process group of its own; returns what stops it (the whole group). */
function background(args: string[]): () => void {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBEWIRE_STATE_DIR: stateDir, KUBEWIRE_CLUSTER: cluster };
  const child = spawn(process.execPath, [BIN, ...args], { env, detached: true, stdio: 'ignore' });
  child.on('error', () => {});
  return () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // ended by its own timeout
    }
  };
}

let stopRef: (() => void) | undefined;
try {
  console.log(`DNS under attack: one attacker pod against one DNS pod of a 2-node cluster, ${DURATION} s per attack; normal queries at ${RATE}/s from another pod, timed on its wire, and as many at the same moment to dnsmasq (C) beside the DNS pod (the machine's floor); ${SERVICES} Services\n`);
  await kw(['up', '--nodes', '2']);
  const docs: string[] = [];
  for (let i = 0; i < SERVICES; i++) docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${i}}\nspec: {ports: [{name: http, port: 80}]}`);
  for (const pod of ['client', 'attacker']) docs.push(`apiVersion: v1\nkind: Pod\nmetadata: {name: ${pod}}\nspec:\n  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]`);
  await kw(['apply', '-f', '-'], `${docs.join('\n---\n')}\n`);
  writeFileSync(join(work, 'queries.txt'), Array.from({ length: 1000 }, (_, i) => (i % 5 === 4 ? `missing-${i}.default.svc.cluster.local A` : `svc-${(i * 7) % SERVICES}.default.svc.cluster.local A`)).join('\n') + '\n');
  writeFileSync(join(work, 'hosts'), Array.from({ length: SERVICES }, (_, i) => `10.96.${100 + (i >> 8)}.${i & 255} svc-${i}.default.svc.cluster.local`).join('\n') + '\n');
  for (const [name, script] of Object.entries(ATTACKS)) writeFileSync(join(work, `${name}.cjs`), script);
  if (DNS_ENV.length) {
    // The DNS pods' environment (KUBEWIRE_DNS_UDP_THREAD=0: UDP on the main thread, to compare): the Deployment applied again with it.
    const d = JSON.parse(await kw(['get', 'deployment', 'coredns', '-n', 'kube-system', '-o', 'json'])) as { metadata: Record<string, unknown>; spec: { template: { spec: { containers: Array<{ env?: Array<{ name: string; value: string }> }> } } } };
    const c = d.spec.template.spec.containers[0]!;
    c.env = [...(c.env ?? []).filter((e) => !DNS_ENV.some((n) => n.name === e.name)), ...DNS_ENV];
    d.metadata = { name: 'coredns', namespace: 'kube-system', labels: d.metadata.labels };
    await kw(['apply', '-f', '-'], JSON.stringify(d));
    await new Promise((r) => setTimeout(r, 2000));
  }
  await kw(['rollout', 'status', '-n', 'kube-system', 'deployment/coredns', '--timeout', '120s']);
  await kw(['wait', '--for=condition=Ready', 'pod/client', 'pod/attacker', '--timeout', '60s']);
  const pods = JSON.parse(await kw(['get', 'pods', '-n', 'kube-system', '-l', 'k8s-app=kube-dns', '-o', 'json'])) as { items: Array<{ metadata: { name: string; deletionTimestamp?: string }; status: { podIP: string } }> };
  const target = pods.items.find((p) => !p.metadata.deletionTimestamp)!; // not one a rollout (DNS_ENV) is ending
  const ip = target.status.podIP;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip ?? '')) throw new Error(`${target.metadata.name} has no IPv4 address (${ip})`);
  const pid = podPid('kube-system', target.metadata.name);
  const check = await kw(['exec', 'client', '--', 'dig', '+short', '+time=2', `@${ip}`, 'svc-1.default.svc.cluster.local'], undefined, 30_000);
  if (!check.trim()) throw new Error(`${target.metadata.name} (${ip}) does not answer`);
  // dnsmasq in the DNS pod's network namespace, for as long as the runs can take.
  const runs = Object.keys(ATTACKS)
    .filter((a) => !ONLY || ONLY.includes(a))
    .flatMap((name) => (name === 'qtypes' ? QTYPES_RATES.map((rate) => ({ name, rate })) : [{ name, rate: 0 }]));
  const bound = (runs.length + 2) * (DURATION + 60) + 120;
  stopRef = background(['exec', '-n', 'kube-system', target.metadata.name, '--', 'timeout', '-k', '5', String(bound), 'dnsmasq', '--keep-in-foreground', '--user=root', `--port=${REF_PORT}`, '--no-resolv', '--no-hosts', `--addn-hosts=${join(work, 'hosts')}`, '--local=/cluster.local/', '--cache-size=10000', '--no-negcache', `--pid-file=${refPidFile}`, '--log-facility=-']);
  for (let i = 0; ; i++) {
    const a = await kw(['exec', 'client', '--', 'dig', '+short', '+time=1', '+tries=1', '-p', String(REF_PORT), `@${ip}`, 'svc-1.default.svc.cluster.local'], undefined, 10_000).catch(() => '');
    if (a.trim()) break;
    if (i >= 20) throw new Error(`dnsmasq beside ${target.metadata.name} does not answer on port ${REF_PORT}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log(`target: ${target.metadata.name} at ${ip} (pid ${pid}), RSS ${rssMB(pid).toFixed(0)} MB at rest; dnsmasq beside it on port ${REF_PORT} (pid ${pidIn(refPidFile) ?? '?'})\n`);

  // Its profile on for the whole run (a line a second in its log: profile.ts): each row also
  // gives the server's own time, from reading a query to sending its answer.
  process.kill(pid, 'SIGUSR2');
  const mark = (what: string) => marks.push(`${new Date().toISOString()} ${what}`);
  const marks: string[] = [];
  /** The profile's lines logged since `since`: the worst second's in-process p99 and max, and the event loop's worst p99 lateness. */
  const inProcess = async (since: number): Promise<string> => {
    const log = await kw(['logs', '-n', 'kube-system', target.metadata.name], undefined, 30_000).catch(() => '');
    const all = [...log.matchAll(/^(\S+) profile (\{.*\})$/gm)].filter((m) => Date.parse(m[1]!) >= since).map((m) => JSON.parse(m[2]!) as { inProcessMs?: [number, number, number]; loopP99: number; udpThread?: number });
    // UDP served on a thread of its own (src/dns/udp-thread.ts): its lines, its event loop.
    const lines = all.some((l) => l.udpThread) ? all.filter((l) => l.udpThread) : all;
    const spreads = lines.flatMap((l) => (l.inProcessMs ? [l.inProcessMs] : []));
    if (!spreads.length) return '-';
    // The loop timer fires every 10 ms: its lateness is the delay past that.
    return `${Math.max(...spreads.map((x) => x[1])).toFixed(2)} / ${Math.max(...spreads.map((x) => x[2])).toFixed(1)}; loop ${Math.max(0, Math.max(...lines.map((l) => l.loopP99)) - 10).toFixed(0)}`;
  };
  const ms = (n: Spread) => `${n.p50.toFixed(2)} / ${n.p99.toFixed(2)} / ${n.max.toFixed(1)}`;
  const profile = (p: Sample) => `${p.cpu.toFixed(0)}% (dnsmasq ${p.refCpu.toFixed(1)}%), Recv-Q ${(p.rxqMax / 1024).toFixed(0)} KiB, ${p.drops} dropped; attacker ${Number.isNaN(p.attackerCpu) ? '-' : `${p.attackerCpu.toFixed(0)}%`}; load ${p.load.toFixed(2)}`;
  const widths = [26, 36, 6, 39, 9, 24, 13, 30];
  const row = (cells: string[]) => console.log(cells.map((c, i) => (i < widths.length ? c.padEnd(widths[i]!) : c)).join(''));
  row(['attack', `DNS pod RSS, MB (< ${GOAL_RSS_MB})`, '', `ours on the wire p50/p99/max ms, lost`, `≤ ${GOAL_P99_MS} ms`, 'dnsmasq p50/p99/max', 'dnsperf p99', 'in process p99/max', 'DNS CPU (dnsmasq), UDP socket; attacker CPU; load / the attacker saw']);
  const referenceSeconds = Math.max(10, Math.min(DURATION, 30));
  const reference = async (label: string, tag: string) => {
    const stop = sample(pid);
    mark(label);
    const since = Date.now();
    const m = await measure(ip, referenceSeconds, tag);
    const p = stop();
    row([label, `${rssMB(pid).toFixed(0)}`, '', `${ms(m.wire)}, ${m.wire.lost}`, m.wire.p99 <= GOAL_P99_MS ? 'met' : 'MISSED', ms(m.ref), m.client.p99.toFixed(2), await inProcess(since), profile(p)]);
  };
  await reference(`none (before, ${referenceSeconds} s)`, 'before');
  for (const { name, rate } of runs) {
    const before = rssMB(pid);
    const script = join(work, `${name}.cjs`);
    rmSync(`${script}.pid`, { force: true });
    const stop = sample(pid, `${script}.pid`);
    const label = rate ? `${name} ${rate}/s` : name;
    mark(label);
    const since = Date.now();
    const [attack, m] = await Promise.all([
      kw(['exec', 'attacker', '--', 'timeout', '-k', '5', String(DURATION + 30), 'sh', '-c', `ulimit -n 8192; exec node ${script} ${ip} ${DURATION} ${rate || ''}`], undefined, (DURATION + 60) * 1000),
      measure(ip, DURATION, `${name}-${rate}`),
    ]);
    const p = stop();
    await new Promise((r) => setTimeout(r, 3000));
    const settled = rssMB(pid);
    row([label, `${before.toFixed(0)} → max ${p.max.toFixed(0)} (${settled.toFixed(0)} 3 s after)`, p.max < GOAL_RSS_MB ? 'met' : 'MISSED', `${ms(m.wire)}, ${m.wire.lost}`, m.wire.p99 <= GOAL_P99_MS ? 'met' : 'MISSED', ms(m.ref), m.client.p99.toFixed(2), await inProcess(since), profile(p)]);
    row(['', '', '', '', '', '', '', '', `  ${attack.trim().split('\n').pop() ?? ''}`]);
  }
  await reference(`none (after, ${referenceSeconds} s)`, 'after');
  if (process.env.PROFILE) writeFileSync(process.env.PROFILE, `${marks.join('\n')}\n${await kw(['logs', '-n', 'kube-system', target.metadata.name])}`);
  console.log(`\nours and dnsmasq: round trips at the client pod's eth0 (tcpdump's kernel timestamps), ${RATE} queries/s to each at once; dnsperf p99: the same queries as the client process saw them;`);
  console.log("in process: the DNS process's own time from reading a UDP query to sending its answer (its profile's worst second: p99 / max ms), and the worst p99 lateness (ms) of the event loop that serves UDP (its own thread): a wait for the CPU.");
  console.log('CoreDNS, for comparison:');
  for (const [name, text] of Object.entries(COREDNS)) console.log(`  ${name.padEnd(10)} ${text}`);
  console.log('  memory     kubeadm\'s and coredns/deployment\'s manifests: limit 170Mi, request 70Mi');
} finally {
  stopRef?.();
  await cleanup();
}
