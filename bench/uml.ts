// A cluster in a kernel of its own (user-mode Linux), as issue 26 sets its goals: `up --kernel uml`
// ≤ 10 s and each command ≤ 0.5 s. `up` is timed by phase from the host's side (when each line
// of its output arrives) and the guest's (the kernel's uptime on its init's lines, the kernel
// host's clock, the guest daemon's log); then each command a user types, against the UML
// cluster and, as the reference taken in the same run, against a cluster on this machine's
// kernel. The load average is printed before and after: UML is one process switching
// through ptrace for every system call and page fault, so a busy machine slows it many times.
//   npm run bench:uml                 RUNS=3 (ups and each command), PAUSE_MS=1000 between commands
//   AS_NOBODY=1 npm run bench:uml     the UML cluster as user nobody (no root at all)
//   UML_CLUSTER=kwu HOST_CLUSTER=kwu2 to choose the clusters' names

import { spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readInKernel } from '../src/kernel/client.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { umlMissing } from '../src/supervisor/uml.ts';

const missing = umlMissing();
if (missing) {
  console.log(`not run: ${missing}`);
  process.exit(0);
}
const RUNS = Number(process.env.RUNS) || 3;
const PAUSE_MS = Number(process.env.PAUSE_MS ?? 1000);
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const asNobody = Boolean(process.env.AS_NOBODY);
const state = mkdtempSync(join(tmpdir(), 'kwb-uml-'));
if (asNobody) chownSync(state, 65534, 65534);
process.env.KUBEWIRE_STATE_DIR = state; // readInKernel finds the kernel host's socket there
const uml = process.env.UML_CLUSTER ?? `kwbu${process.pid % 10000}`;
const host = process.env.HOST_CLUSTER ?? `kwbh${process.pid % 10000}`;
const user = asNobody ? '65534' : undefined;

interface Ran {
  ms: number;
  code: number;
  out: string;
  /** Each line of stdout and the milliseconds since the start when it arrived. */
  lines: Array<{ ms: number; text: string }>;
}

function run(argv: string[], opts: { user?: string; input?: string } = {}): Promise<Ran> {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBEWIRE_STATE_DIR: state, KUBECONFIG: join(state, 'kubeconfig') };
  delete env.NODE_EXTRA_CA_CERTS;
  const full = opts.user ? ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.user}`, '--clear-groups', '--', ...argv] : argv;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(full[0]!, full.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    const lines: Ran['lines'] = [];
    let out = '';
    let partial = '';
    child.stdout.on('data', (b: Buffer) => {
      const ms = performance.now() - t0;
      out += b;
      partial += b;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const text of parts) lines.push({ ms, text });
    });
    child.stderr.on('data', (b: Buffer) => (out += b));
    child.stdin.end(opts.input ?? '');
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - t0, code: code ?? 1, out, lines });
    });
  });
}

const kw = (args: string[], opts: { user?: string; input?: string } = {}) => run([process.execPath, BIN, ...args], opts);

async function ok(args: string[], opts: { user?: string; input?: string } = {}): Promise<Ran> {
  const r = await kw(args, opts);
  if (r.code !== 0) throw new Error(`kubewire ${args.join(' ')} failed (${r.code}):\n${r.out}`);
  return r;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const range = (ms: number[]) => `${secs(median(ms))} (${(Math.min(...ms) / 1000).toFixed(2)}–${(Math.max(...ms) / 1000).toFixed(2)})`;
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

/** The phases of one `up --kernel uml`, in seconds from the command's start, from its output and the kernel's logs. */
async function umlPhases(r: Ran, startedAt: number): Promise<Array<[string, number]>> {
  const at = (re: RegExp) => r.lines.find((l) => re.test(l.text))?.ms;
  const log = readFileSync(join(state, uml, 'kernel.log'), 'utf8');
  const iso = (re: RegExp) => {
    const m = new RegExp(`kubewire kernel-host: (\\S+) ${re.source}`).exec(log);
    return m ? Date.parse(m[1]!) - startedAt : undefined;
  };
  const kernelStart = iso(/kernel started/);
  const uptime = (re: RegExp) => {
    const m = re.exec(log);
    return m && kernelStart !== undefined ? kernelStart + Number(m[1]) * 1000 : undefined;
  };
  const daemon = (await readInKernel(uml, [`/run/kubewire/${uml}/daemon.log`]).catch(() => ({}) as Record<string, string | null>))[`/run/kubewire/${uml}/daemon.log`] ?? '';
  /** When the guest daemon logged a line (the last such line). */
  const daemonAt = (re: RegExp) => {
    const m = [...daemon.matchAll(new RegExp(`^(\\S+) ${re.source}`, 'gm'))].at(-1);
    return m ? Date.parse(m[1]!) - startedAt : undefined;
  };
  const lastGuestLine = r.lines.filter((l) => /^\S+\s+\d+\.\d+\.\d+\.\d+\s+/.test(l.text)).at(-1)?.ms;
  const marks: Array<[string, number | undefined]> = [
    ['host: kernel host started, kernel spawned', kernelStart],
    ['kernel: boot until init runs', uptime(/\[\s*([\d.]+)\] Run \S+ as init process/)],
    ['init: mounts, modules loaded', uptime(/kubewire-init: ([\d.]+) s: modules loaded/)],
    ['guest agent (Node) ready', iso(/guest ready/)],
    ['guest `up` runs (its Node start)', at(/creating namespaces/)],
    ['network built (namespaces, links, iptables)', at(/starting the control plane/)],
    ['daemon started (in up\'s own process, the store)', daemonAt(/store opened/) ?? at(/daemon: store opened/)],
    ['node agents started', daemonAt(/node agents: \d+ of \d+ started/)],
    ['service proxies synced, API listening', daemonAt(/API server listening/)],
    ['daemon ready (HTTPS served)', daemonAt(/kubewire daemon for cluster \S+ ready/)],
    ['`up` saw every node Ready', at(/^cluster \S+ is up in [\d.]+ s/)],
    ['guest `up` printed its last line', lastGuestLine],
    ['guest `up` ended (the host says so)', at(/is up in its own kernel/)],
    ['host: kubeconfig merged, `up` exits', r.ms],
  ];
  const out: Array<[string, number]> = [];
  for (const [what, ms] of marks) if (ms !== undefined) out.push([what, ms]);
  return out;
}

const COMMANDS: Array<{ label: string; args: (c: string) => string[]; input?: string; fails?: boolean }> = [
  { label: 'get nodes', args: (c) => ['get', 'nodes', '--cluster', c] },
  { label: 'get pods -o wide', args: (c) => ['get', 'pods', '-o', 'wide', '--cluster', c] },
  { label: 'apply -f (one pod, unchanged)', args: (c) => ['apply', '--cluster', c, '-f', '-'] },
  { label: 'logs p1', args: (c) => ['logs', 'p1', '--cluster', c] },
  { label: 'exec p1 -- true', args: (c) => ['exec', 'p1', '--cluster', c, '--', 'true'] },
  { label: 'describe pod p1', args: (c) => ['describe', 'pod', 'p1', '--cluster', c] },
  { label: 'describe node', args: (c) => ['describe', 'node', `${c}-node-1`, '--cluster', c] },
  { label: 'trace: a bad target, refused (its checks)', args: (c) => ['trace', 'pod/p1', '999.1.1.1', '--cluster', c], fails: true },
];

const POD = `apiVersion: v1
kind: Pod
metadata: {name: p1}
spec:
  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
`;

async function waitRunning(cluster: string, as?: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!/p1\s+1\/1\s+Running/.test((await kw(['get', 'pods', '--cluster', cluster], { user: as })).out)) {
    if (Date.now() > deadline) throw new Error(`pod p1 of ${cluster} did not run`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Each command RUNS times against `cluster`, PAUSE_MS apart (a user types them seconds apart). */
async function commandTimes(cluster: string, as?: string): Promise<number[][]> {
  await ok(['apply', '--cluster', cluster, '-f', '-'], { input: POD, user: as });
  await waitRunning(cluster, as);
  const out: number[][] = [];
  for (const c of COMMANDS) {
    const ms: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await new Promise((r) => setTimeout(r, PAUSE_MS));
      const r = await kw(c.args(cluster), { user: as, input: c.label.startsWith('apply') ? POD : '' });
      if ((r.code !== 0) !== Boolean(c.fails)) throw new Error(`kubewire ${c.args(cluster).join(' ')}: exit ${r.code}:\n${r.out}`);
      ms.push(r.ms);
    }
    out.push(ms);
  }
  return out;
}

const cleanup = async () => {
  await kw(['down', '--cluster', host]);
  await kw(['down', '--cluster', uml], { user });
  rmSync(state, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

const row = (cells: string[], widths: number[]) => console.log(cells.map((c, i) => c.padEnd(widths[i]!)).join(''));

try {
  console.log(`bench:uml ${new Date().toISOString()}: ${RUNS} runs each (median, range)${asNobody ? '; the UML cluster as user nobody' : ''}; load ${load()}`);
  const nodeStart: number[] = [];
  for (let i = 0; i < RUNS; i++) nodeStart.push((await run([process.execPath, '-e', '0'])).ms);
  console.log(`reference: node -e 0 ${range(nodeStart)}`);

  const hostUps: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    hostUps.push((await ok(['up', '--cluster', host])).ms);
    if (i < RUNS - 1) await ok(['down', '--cluster', host]);
  }
  const umlUps: number[] = [];
  let phases: Array<[string, number]> = [];
  for (let i = 0; i < RUNS; i++) {
    const startedAt = Date.now();
    const r = await ok(['up', '--kernel', 'uml', '--cluster', uml], { user });
    umlUps.push(r.ms);
    if (r.ms === median(umlUps) || i === 0) phases = await umlPhases(r, startedAt);
    if (i < RUNS - 1) await ok(['down', '--cluster', uml], { user });
  }
  console.log(`\nup, 2 nodes, until every node is Ready (load ${load()})`);
  console.log(`  host kernel (reference)   ${range(hostUps)}`);
  console.log(`  --kernel uml              ${range(umlUps)}   goal ≤ 10 s; ${(median(umlUps) / median(hostUps)).toFixed(1)}× the host kernel's`);
  console.log(`\nphases of one up --kernel uml (seconds from its start; host's clock, the guest's uptime for the kernel's lines):`);
  let prev = 0;
  for (const [what, ms] of phases) {
    console.log(`  ${what.padEnd(48)}${(ms / 1000).toFixed(2).padStart(7)}  (+${((ms - prev) / 1000).toFixed(2)})`);
    prev = ms;
  }

  const hostTimes = await commandTimes(host);
  const umlTimes = await commandTimes(uml, user);
  console.log(`\ncommands, ${PAUSE_MS} ms apart (load ${load()}):`);
  const w = [44, 26, 26, 10];
  row(['command', 'host kernel (reference)', 'uml', 'uml/host'], w);
  COMMANDS.forEach((c, i) => row([c.label, range(hostTimes[i]!), range(umlTimes[i]!), `${(median(umlTimes[i]!) / median(hostTimes[i]!)).toFixed(2)}×`], w));
  console.log(`goal: every uml command ≤ 0.5 s; load at the end ${load()}`);
} finally {
  await cleanup();
}
