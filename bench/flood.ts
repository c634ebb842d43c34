// Issue 12's runaway manifest, as a user meets it: a Deployment of 1,000,000,000 replicas
// applied with `kubewire apply` to a 2-node cluster. Measured: how long apply takes; how
// long `kubewire get pods` takes while the cluster fills up, against the same command on
// the idle cluster in this run (the CLI's own start is most of it); the API's own answer
// time as a breakdown (GET pods on the socket, every 100 ms); the pods and Events the
// cluster ends with; then `kubewire delete` and the time until every pod is gone.
//   npm run bench:flood            (OBSERVE_SECONDS=60 of observation by default)

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Event, Pod } from '../src/api/types.ts';
import { ApiClient } from '../src/client/rest.ts';
import { resourceNamed } from '../src/api/resources.ts';
import { down } from '../src/lifecycle/cluster.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { daemonPaths } from '../src/state/paths.ts';

const OBSERVE_S = Number(process.env.OBSERVE_SECONDS) || 60;
const stateDir = mkdtempSync(join(tmpdir(), 'kwb-flood-'));
process.env.KUBEWIRE_STATE_DIR = stateDir;
process.env.KUBECONFIG = join(stateDir, 'kubeconfig'); // the context up merges goes to the scratch state, never ~/.kube/config
const name = `kwf${process.pid % 100000}`;
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const manifest = join(stateDir, 'huge.yaml');
writeFileSync(manifest, `apiVersion: apps/v1
kind: Deployment
metadata: {name: huge}
spec:
  replicas: 1000000000
  selector: {matchLabels: {app: huge}}
  template:
    metadata: {labels: {app: huge}}
    spec:
      containers: [{name: web, image: agnhost, args: [netexec, --http-port=8080], ports: [{containerPort: 8080}]}]
`);
const line = (what: string, value: string, goal = '') => console.log(`${what.padEnd(50)}${value.padEnd(34)}${goal}`);
const cleanup = async () => {
  await down(name).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

/** Runs the CLI as a user does; resolves to the wall time in ms. */
function kubewire(...args: string[]): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, KUBEWIRE_STATE_DIR: stateDir, KUBEWIRE_CLUSTER: name }, timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubewire ${args.join(' ')}: ${stderr || err.message}`));
      else resolve({ ms: performance.now() - t0, stdout });
    });
  });
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN;
const ms = (x: number) => `${x.toFixed(0)} ms`;

try {
  await kubewire('up');
  const client = new ApiClient(daemonPaths(name).socket);
  const pods = resourceNamed('pods')!;
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) idle.push((await kubewire('get', 'pods')).ms);
  line('reference: kubewire get pods, idle cluster', `median ${ms(quantile(idle, 0.5))}`);

  const applied = await kubewire('apply', '-f', manifest);
  line('kubewire apply (replicas: 1000000000)', ms(applied.ms), 'goal: at once');

  // The API's own answer time, sampled apart from the CLI.
  const api: number[] = [];
  let observing = true;
  const sampler = (async () => {
    while (observing) {
      const t0 = performance.now();
      await client.list<Pod>(pods, 'default').catch(() => undefined);
      api.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const cli: number[] = [];
  let most = 0;
  let allRunningAt: number | undefined;
  const t0 = performance.now();
  while (performance.now() - t0 < OBSERVE_S * 1000) {
    const r = await kubewire('get', 'pods', '-o', 'json');
    cli.push(r.ms);
    const items = (JSON.parse(r.stdout) as { items: Pod[] }).items;
    most = Math.max(most, items.length);
    if (allRunningAt === undefined && items.length && items.every((p) => p.status?.phase === 'Running')) allRunningAt = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 500));
  }
  observing = false;
  await sampler;
  line(`kubewire get pods, during the first ${OBSERVE_S} s`, `median ${ms(quantile(cli, 0.5))}, max ${ms(Math.max(...cli))}`, `goal <= 1000 ms; ${(Math.max(...cli) / quantile(idle, 0.5)).toFixed(2)}x idle`);
  line('  breakdown: API alone (GET pods on the socket)', `median ${ms(quantile(api, 0.5))}, p99 ${ms(quantile(api, 0.99))}, max ${ms(Math.max(...api))}`);
  line('pods the cluster holds at most', String(most), 'goal <= the limit, 220 (110 x 2 nodes)');
  line('  all of them Running after', allRunningAt === undefined ? 'not within the observation' : `${(allRunningAt / 1000).toFixed(1)} s`);
  const events = (await client.list<Event>(resourceNamed('events')!, 'default')).items;
  const failed = events.find((e) => e.reason === 'FailedCreate');
  line('Events in the namespace', `${events.length} (FailedCreate counted ${failed?.count ?? 0}x)`);
  line('  store.db', `${(statSync(daemonPaths(name).store).size / 1e6).toFixed(1)} MB`);
  const rss = Number(readFileSync(`/proc/${readFileSync(daemonPaths(name).pidFile, 'utf8').trim()}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;
  line('  daemon RSS', `${rss.toFixed(0)} MB`);

  const del = await kubewire('delete', 'deployment', 'huge', '--wait=false');
  line('kubewire delete deployment huge', ms(del.ms), 'goal: at once');
  const t1 = performance.now();
  while ((await client.list(pods, 'default')).items.length) {
    if (performance.now() - t1 > 120_000) throw new Error('pods still there 120 s after the delete');
    await new Promise((r) => setTimeout(r, 200));
  }
  line('  until every pod is gone', `${((performance.now() - t1) / 1000).toFixed(1)} s`);
} finally {
  await cleanup();
}
