// What a new user waits for, through the CLI as they type it (issue 26's goals): `kubewire up`
// on this machine's kernel and in a kernel of its own (user-mode Linux, the way an ordinary
// user runs it), then commands against each cluster, each timed from the shell's side. The
// references in the same run: a bare `node -e 0` start (the floor for any Node CLI) and
// `kubewire version` (the CLI's own start, no cluster).
//   npm run bench:first-run          (RUNS=3: each figure is the median of RUNS, with the range)
//   AS_NOBODY=1 npm run bench:first-run       (the UML cluster as user nobody: no root at all)

import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RUNS = Number(process.env.RUNS) || 3;
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const state = mkdtempSync(join(tmpdir(), 'kwb-first-'));
const asNobody = Boolean(process.env.AS_NOBODY);
if (asNobody) chownSync(state, 65534, 65534);
const host = `kwbh${process.pid % 10000}`;
const uml = `kwbu${process.pid % 10000}`;

interface Ran {
  ms: number;
  code: number;
  out: string;
}

function run(argv: string[], opts: { user?: string; input?: string } = {}): Promise<Ran> {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBEWIRE_STATE_DIR: state, KUBECONFIG: join(state, 'kubeconfig') };
  delete env.NODE_EXTRA_CA_CERTS;
  const full = opts.user ? ['setpriv', `--reuid=${opts.user}`, `--regid=${opts.user}`, '--clear-groups', '--', ...argv] : argv;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = execFile(full[0]!, full.slice(1), { env, timeout: 180_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ ms: performance.now() - t0, code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

const kw = (args: string[], opts: { user?: string; input?: string } = {}) => run([process.execPath, BIN, ...args], opts);

async function ok(args: string[], opts: { user?: string; input?: string } = {}): Promise<Ran> {
  const r = await kw(args, opts);
  if (r.code !== 0) throw new Error(`kubewire ${args.join(' ')} failed (${r.code}):\n${r.out}`);
  return r;
}

/** Median and range of `runs` timings, in seconds. */
function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const mid = s[Math.floor(s.length / 2)]!;
  return `${(mid / 1000).toFixed(2)} s (${(s[0]! / 1000).toFixed(2)}–${(s.at(-1)! / 1000).toFixed(2)})`;
}

const line = (what: string, value: string, reference = '') => console.log(`${what.padEnd(58)}${value.padEnd(24)}${reference}`);

async function times(n: number, f: () => Promise<Ran>, pauseMs = 0): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    out.push((await f()).ms);
  }
  return out;
}

const POD = `apiVersion: v1
kind: Pod
metadata: {name: p1}
spec:
  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
`;

async function waitRunning(cluster: string, user?: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!/p1\s+1\/1\s+Running/.test((await kw(['get', 'pods', '--cluster', cluster], { user })).out)) {
    if (Date.now() > deadline) throw new Error(`pod p1 of ${cluster} did not run`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The commands a user runs against a cluster, each timed RUNS times with `pauseMs` between (the guest's warm process reloads meanwhile). */
async function commands(cluster: string, label: string, pauseMs: number, user?: string): Promise<void> {
  await ok(['apply', '--cluster', cluster, '-f', '-'], { input: POD, user });
  await waitRunning(cluster, user);
  const c = ['--cluster', cluster];
  line(`${label}: get nodes`, summary(await times(RUNS, () => ok(['get', 'nodes', ...c], { user }), pauseMs)), 'goal ≤ 0.5 s');
  line(`${label}: get pods -o wide`, summary(await times(RUNS, () => ok(['get', 'pods', '-o', 'wide', ...c], { user }), pauseMs)), 'goal ≤ 0.5 s');
  line(`${label}: apply (one pod, unchanged)`, summary(await times(RUNS, () => ok(['apply', ...c, '-f', '-'], { input: POD, user }), pauseMs)), 'goal ≤ 0.5 s');
  line(`${label}: exec p1 -- true`, summary(await times(RUNS, () => ok(['exec', ...c, 'p1', '--', 'true'], { user }), pauseMs)), 'goal ≤ 0.5 s');
  line(`${label}: logs p1`, summary(await times(RUNS, () => ok(['logs', ...c, 'p1'], { user }), pauseMs)), 'goal ≤ 0.5 s');
  line(`${label}: describe pod p1`, summary(await times(RUNS, () => ok(['describe', 'pod', 'p1', ...c], { user }), pauseMs)), 'goal ≤ 0.5 s');
  if (pauseMs) line(`${label}: exec p1 -- true, back to back`, summary(await times(RUNS, () => ok(['exec', ...c, 'p1', '--', 'true'], { user }))), 'goal ≤ 0.5 s');
}

const user = asNobody ? '65534' : undefined;
try {
  console.log(`kubewire first run, ${new Date().toISOString().slice(0, 10)}, ${RUNS} runs each: median (range)${asNobody ? '; the UML cluster as user nobody' : ''}`);
  line('reference: node -e 0', summary(await times(RUNS, () => run([process.execPath, '-e', '0']))));
  line('kubewire version (the CLI starts, no cluster)', summary(await times(RUNS, () => ok(['version']))));

  const ups: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    ups.push((await ok(['up', '--cluster', host])).ms);
    if (i < RUNS - 1) await ok(['down', '--cluster', host]);
  }
  line('up, host kernel, 2 nodes (until every node is Ready)', summary(ups), 'README said ~0.4 s');
  await commands(host, 'host kernel', 0);
  await ok(['down', '--cluster', host]);

  const umlUps: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    umlUps.push((await ok(['up', '--kernel', 'uml', '--cluster', uml], { user })).ms);
    if (i < RUNS - 1) await ok(['down', '--cluster', uml], { user });
  }
  line('up --kernel uml, 2 nodes (boot + cluster)', summary(umlUps), 'goal ≤ 10 s');
  await commands(uml, 'uml', 3000, user);
  await ok(['down', '--cluster', uml], { user });
} finally {
  await kw(['down', '--cluster', host]);
  await kw(['down', '--cluster', uml], { user });
  rmSync(state, { recursive: true, force: true });
}
