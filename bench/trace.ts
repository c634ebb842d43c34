// `kubewire trace` as a user runs it (issue 17's goals): on a 3-node cluster, one trace of a
// pod to a Service through the CLI (each run a fresh `kubewire` process, as typed), beside
// `kubewire get pods` as the reference for what any CLI call costs; then `trace --matrix` as
// the namespace grows (5, 10, 20 pods: every pod to every pod and the Service).
//   npm run bench:trace

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { down } from '../src/lifecycle/cluster.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { webApp } from '../test/kube.ts';

const stateDir = mkdtempSync(join(tmpdir(), 'kwb-trace-'));
process.env.KUBEWIRE_STATE_DIR = stateDir;
process.env.KUBECONFIG = join(stateDir, 'kubeconfig'); // the context up merges goes to the scratch state, never ~/.kube/config
const name = `kwbt${process.pid % 10000}`;
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const kw = (...args: string[]) => execFileSync(process.execPath, [BIN, ...args, '--cluster', name], { encoding: 'utf8', timeout: 120_000, env: process.env });
const timed = (...args: string[]) => {
  const t0 = performance.now();
  const out = kw(...args);
  return { ms: performance.now() - t0, out };
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const line = (what: string, value: string, goal = '') => console.log(`${what.padEnd(52)}${value.padEnd(26)}${goal}`);
const cleanup = async () => {
  await down(name).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

const app = (replicas: number) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n---\n${webApp({ replicas, namespace: 'bench' })}`;

async function runningPods(n: number): Promise<string[]> {
  for (let i = 0; i < 600; i++) {
    const pods = JSON.parse(kw('get', 'pods', '-n', 'bench', '-o', 'json')).items as Array<{ metadata: { name: string }; status?: { phase?: string } }>;
    if (pods.length === n && pods.every((p) => p.status?.phase === 'Running')) return pods.map((p) => p.metadata.name);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${n} pods did not run`);
}

try {
  kw('up', '--nodes', '3');
  execFileSync(process.execPath, [BIN, 'apply', '-f', '-', '--cluster', name], { input: app(5), env: process.env });
  const pods = await runningPods(5);
  await new Promise((r) => setTimeout(r, 2000)); // the DNS pods' start settles
  const traces: number[] = [];
  const refs: number[] = [];
  for (let i = 0; i < 7; i++) {
    refs.push(timed('get', 'pods', '-n', 'bench').ms);
    const t = timed('trace', `pod/${pods[0]}`, 'service/web', '-n', 'bench', '-o', 'json');
    const verdict = JSON.parse(t.out).verdict;
    if (verdict !== 'delivered') throw new Error(`trace said ${verdict}`);
    traces.push(t.ms);
  }
  const ref = median(refs);
  line('kubewire get pods (reference CLI call), median of 7', `${ref.toFixed(0)} ms`);
  line('kubewire trace pod → service, 3 nodes, median of 7', `${median(traces).toFixed(0)} ms (${(median(traces) / ref).toFixed(2)}× get)`, 'goal ≤ 1 s');
  for (const n of [5, 10, 20]) {
    if (n !== 5) {
      kw('scale', 'deployment/web', '-n', 'bench', '--replicas', String(n));
      await runningPods(n);
      await new Promise((r) => setTimeout(r, 1500)); // endpoints reach every node's rules
    }
    const m = timed('trace', '--matrix', '-n', 'bench', '-o', 'json');
    const result = JSON.parse(m.out) as { sources: string[]; targets: string[]; cells: Array<{ verdict: string }> };
    const delivered = result.cells.filter((c) => c.verdict === 'delivered').length;
    line(`trace --matrix, ${result.sources.length} pods × ${result.targets.length} targets`, `${(m.ms / 1000).toFixed(2)} s (${(m.ms / result.cells.length).toFixed(0)} ms/probe)`, n === 20 ? `goal ≤ 30 s; ${delivered}/${result.cells.length} delivered` : `${delivered}/${result.cells.length} delivered`);
  }
} finally {
  await cleanup();
}
