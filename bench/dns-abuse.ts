// Issue 27's attacks on the cluster DNS, each run by one pod against one DNS pod of a
// two-node cluster for DURATION seconds, while another pod measures normal queries to the
// same DNS pod (dnsperf, rate-limited, per-query latencies as in bench:dns) and this process
// samples the DNS pod's RSS (/proc/PID/status of the dns-server process whose network
// namespace holds the pod's address). The attacks:
//   pipeline   TCP connections that pipeline queries as fast as the server takes them and
//              never read an answer (reconnecting when closed)
//   slowloris  1,500 TCP connections, each sending one byte every 7 s (reopened when closed)
//   qtypes     all 65,536 query types, twice, over UDP, then random types, with a /metrics
//              scrape every 2 s (its time and size)
// Printed beside the goals (RSS < 150 MB, p99 ≤ 2 ms) and CoreDNS's documented limits.
//   npm run bench:dns-abuse      DURATION=60 (s per attack)  RATE=200 (normal queries/s)
//     ATTACKS=pipeline,qtypes (a subset)  QTYPES_RATE=N[,N...] (the flood's queries/s, a row each;
//     0, the default: as fast as the attacker sends)  CLUSTER=name (default kwba<pid>)  PROFILE=FILE (the DNS process's
//     profile, a line a second: loop delay, GC, CPU, queries read/dropped/answered; src/dns/profile.ts)
// Beside each row: the DNS process's CPU (% of one core) and its UDP socket's largest Recv-Q
// and drops (/proc/PID/net/udp, read in its network namespace), the attacker's CPU, the load.

import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const GOAL_RSS_MB = 150;
const GOAL_P99_MS = 2;

function kw(args: string[], input?: string, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, KUBEWIRE_STATE_DIR: stateDir, KUBEWIRE_CLUSTER: cluster };
    const child = execFile(process.execPath, [BIN, ...args], { env, timeout: timeoutMs, maxBuffer: 256 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`kubewire ${args.slice(0, 4).join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
    child.stdin!.end(input ?? '');
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
const s = dgram.createSocket('udp4'); s.on('message', () => {});
const name = 'svc-1.default.svc.cluster.local';
const q = (t, id) => { const b = Buffer.alloc(12 + name.length + 2 + 4); b.writeUInt16BE(id, 0); b[2] = 1; b.writeUInt16BE(1, 4); let o = 12; for (const l of name.split('.')) { b[o++] = l.length; b.write(l, o, 'latin1'); o += l.length; } b[o++] = 0; b.writeUInt16BE(t, o); b.writeUInt16BE(1, o + 2); return b; };
const rate = Number(process.argv[4]) || 0; const t0 = Date.now();
const end = Date.now() + seconds * 1000; let sent = 0; const scrapes = [];
// Paced at rate/s when given (checked every 200 queries), else as fast as sends complete.
async function send() { for (let n = 0; Date.now() < end; n++) { const t = n < 131072 ? n & 0xffff : Math.floor(Math.random() * 65536); await new Promise((r) => s.send(q(t, n & 0xffff), 53, ip, r)); sent++; if (n % 200 === 199) { const ahead = rate ? t0 + (sent / rate) * 1000 - Date.now() : 0; await new Promise((r) => setTimeout(r, Math.max(5, ahead))); } } }
function scrape() { if (Date.now() >= end) return; const t0 = Date.now(); let size = 0; http.get({ host: ip, port: 9153, path: '/metrics', timeout: 30000 }, (res) => { res.on('data', (c) => (size += c.length)); res.on('end', () => { scrapes.push({ ms: Date.now() - t0, bytes: size }); setTimeout(scrape, 2000); }); }).on('error', () => setTimeout(scrape, 2000)); }
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

/** The pid of the dns-server process serving `podIP` (its network namespace holds the address). */
function dnsPid(podIP: string): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!cmd.includes('dns-server') || !cmd.includes(cluster)) continue;
      if (readFileSync(`/proc/${entry}/net/fib_trie`, 'utf8').includes(podIP)) return Number(entry);
    } catch {
      // a process that went meanwhile
    }
  }
  throw new Error(`no dns-server process of cluster ${cluster} holds ${podIP}`);
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

/** The pid of the attacker's node process running `script`, once it runs (undefined until then). */
function attackerPid(script: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(script)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

interface Sample {
  max: number;
  last: number;
  cpu: number;
  rxqMax: number;
  drops: number;
  attackerCpu: number;
  load: number;
}

/** Samples `pid` every 200 ms until stopped: RSS (largest, last), CPU (% of a core), its UDP socket, the attacker's CPU, the load. */
function sample(pid: number, script?: string): () => Sample {
  let max = rssMB(pid);
  let last = max;
  let rxqMax = 0;
  const t0 = performance.now();
  const cpu0 = cpuSeconds(pid);
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
      if (script && !attacker) {
        const a = attackerPid(script);
        if (a) attacker = { pid: a, cpu0: cpuSeconds(a), cpu: cpuSeconds(a) };
      } else if (attacker) attacker.cpu = cpuSeconds(attacker.pid);
    } catch {
      // the attacker ended
    }
  }, 200);
  return () => {
    clearInterval(timer);
    const seconds = (performance.now() - t0) / 1000;
    let cpu = NaN;
    try {
      cpu = ((cpuSeconds(pid) - cpu0) / seconds) * 100;
    } catch {
      // gone
    }
    return { max, last, cpu, rxqMax, drops: drops - drops0, attackerCpu: attacker ? ((attacker.cpu - attacker.cpu0) / seconds) * 100 : NaN, load: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]) };
  };
}

/** Normal queries to `ip` at RATE/s for `seconds`: p50, p99 and lost, from dnsperf -v's per-query latencies. */
async function normalQueries(ip: string, seconds: number): Promise<{ p50: number; p99: number; max: number; lost: number; n: number }> {
  const out = await kw(['exec', 'client', '--', 'dnsperf', '-s', ip, '-d', join(work, 'queries.txt'), '-l', String(seconds), '-Q', String(RATE), '-t', '2', '-v'], undefined, (seconds + 60) * 1000);
  const samples = [...out.matchAll(/^> \S+ .* ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? 0);
  if (samples.length < 10) throw new Error(`too few latency samples (${samples.length}):\n${out.slice(0, 2000)}`);
  return { p50: samples[Math.floor(samples.length * 0.5)]!, p99: samples[Math.floor(samples.length * 0.99)]!, max: samples[samples.length - 1]!, lost, n: samples.length };
}

try {
  console.log(`DNS under attack: one attacker pod against one DNS pod of a 2-node cluster, ${DURATION} s per attack; normal queries at ${RATE}/s from another pod (dnsperf); ${SERVICES} Services\n`);
  await kw(['up', '--nodes', '2']);
  const docs: string[] = [];
  for (let i = 0; i < SERVICES; i++) docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${i}}\nspec: {ports: [{name: http, port: 80}]}`);
  for (const pod of ['client', 'attacker']) docs.push(`apiVersion: v1\nkind: Pod\nmetadata: {name: ${pod}}\nspec:\n  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]`);
  await kw(['apply', '-f', '-'], `${docs.join('\n---\n')}\n`);
  writeFileSync(join(work, 'queries.txt'), Array.from({ length: 1000 }, (_, i) => (i % 5 === 4 ? `missing-${i}.default.svc.cluster.local A` : `svc-${(i * 7) % SERVICES}.default.svc.cluster.local A`)).join('\n') + '\n');
  for (const [name, script] of Object.entries(ATTACKS)) writeFileSync(join(work, `${name}.cjs`), script);
  await kw(['rollout', 'status', '-n', 'kube-system', 'deployment/coredns', '--timeout', '60s']);
  await kw(['wait', '--for=condition=Ready', 'pod/client', 'pod/attacker', '--timeout', '60s']);
  const pods = JSON.parse(await kw(['get', 'pods', '-n', 'kube-system', '-l', 'k8s-app=kube-dns', '-o', 'json'])) as { items: Array<{ metadata: { name: string }; status: { podIP: string } }> };
  const target = pods.items[0]!;
  const ip = target.status.podIP;
  const pid = dnsPid(ip);
  const check = await kw(['exec', 'client', '--', 'dig', '+short', `@${ip}`, 'svc-1.default.svc.cluster.local']);
  if (!check.trim()) throw new Error(`${target.metadata.name} (${ip}) does not answer`);
  console.log(`target: ${target.metadata.name} at ${ip} (pid ${pid}), RSS ${rssMB(pid).toFixed(0)} MB at rest\n`);

  if (process.env.PROFILE) process.kill(pid, 'SIGUSR2'); // its profile on, a line a second in its log
  const rows: string[][] = [];
  const mark = (what: string) => process.env.PROFILE && marks.push(`${new Date().toISOString()} ${what}`);
  const marks: string[] = [];
  const ms = (n: { p50: number; p99: number; max: number }) => `${n.p50.toFixed(2)} / ${n.p99.toFixed(2)} / ${n.max.toFixed(1)}`;
  const profile = (p: Sample) => `${p.cpu.toFixed(0)}%, Recv-Q ${(p.rxqMax / 1024).toFixed(0)} KiB, ${p.drops} dropped; attacker ${Number.isNaN(p.attackerCpu) ? '-' : `${p.attackerCpu.toFixed(0)}%`}; load ${p.load.toFixed(2)}`;
  const reference = async (label: string) => {
    const stop = sample(pid);
    mark(label);
    const n = await normalQueries(ip, Math.min(DURATION, 10));
    const p = stop();
    rows.push([label, `${rssMB(pid).toFixed(0)}`, '', ms(n), String(n.lost), n.p99 <= GOAL_P99_MS ? 'met' : 'MISSED', profile(p)]);
  };
  await reference('none (reference, 10 s)');
  const runs = Object.keys(ATTACKS)
    .filter((a) => !ONLY || ONLY.includes(a))
    .flatMap((name) => (name === 'qtypes' ? QTYPES_RATES.map((rate) => ({ name, rate })) : [{ name, rate: 0 }]));
  for (const { name, rate } of runs) {
    const before = rssMB(pid);
    const script = join(work, `${name}.cjs`);
    const stop = sample(pid, script);
    mark(rate ? `${name} ${rate}/s` : name);
    const [attack, normal] = await Promise.all([
      kw(['exec', 'attacker', '--', 'sh', '-c', `ulimit -n 8192; exec node ${script} ${ip} ${DURATION} ${rate || ''}`], undefined, (DURATION + 90) * 1000),
      normalQueries(ip, DURATION),
    ]);
    const p = stop();
    await new Promise((r) => setTimeout(r, 3000));
    const settled = rssMB(pid);
    rows.push([rate ? `${name} ${rate}/s` : name, `${before.toFixed(0)} → max ${p.max.toFixed(0)} (${settled.toFixed(0)} 3 s after)`, p.max < GOAL_RSS_MB ? 'met' : 'MISSED', ms(normal), String(normal.lost), normal.p99 <= GOAL_P99_MS ? 'met' : 'MISSED', profile(p)]);
    rows.push(['', '', '', '', '', '', `  ${attack.trim().split('\n').pop() ?? ''}`]);
  }
  await reference('none (after, 10 s)');
  if (process.env.PROFILE) writeFileSync(process.env.PROFILE, `${marks.join('\n')}\n${await kw(['logs', '-n', 'kube-system', target.metadata.name])}`);
  const widths = [24, 34, 8, 26, 6, 8];
  const row = (cells: string[]) => console.log(cells.map((c, i) => (i < widths.length ? c.padEnd(widths[i]!) : c)).join(''));
  row(['attack', `DNS pod RSS, MB (goal < ${GOAL_RSS_MB})`, '', `normal p50/p99/max ms (≤ ${GOAL_P99_MS})`, 'lost', '', 'DNS CPU, UDP socket; attacker CPU; load / the attacker saw']);
  for (const r of rows) row(r);
  console.log('\nCoreDNS, for comparison:');
  for (const [name, text] of Object.entries(COREDNS)) console.log(`  ${name.padEnd(10)} ${text}`);
  console.log('  memory     kubeadm\'s and coredns/deployment\'s manifests: limit 170Mi, request 70Mi');
} finally {
  await cleanup();
}
