// How pods cross nodes in each routing mode (issue 19's goals), measured as a user would:
// one 2-node cluster per mode (routed, host-gw, vxlan, vpc), all up at once so that the
// rounds interleave and drift hits every mode alike. Through `kubewire exec`:
//   - TCP throughput pod → pod across nodes: iperf3, 4 s, one stream, median of 5 rounds,
//     with the CPU the whole machine spent per GB moved (the cost behind the figure);
//   - latency across nodes: ping RTT (200 pings 2 ms apart), median of 5 rounds;
// and through `kubewire apply`: pod setup, from apply until every pod is Running (10, then
// 40 pods). Ratios are against routed mode in the same run.
//   npm run bench:modes

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { down } from '../src/lifecycle/cluster.ts';
import { cleanupOnInterrupt } from '../src/lab/lab.ts';
import { echoPod, webApp } from '../test/kube.ts';

const MODES = ['routed', 'host-gw', 'vxlan', 'vpc'] as const;
type Mode = (typeof MODES)[number];
const GOAL: Partial<Record<Mode, number>> = { vxlan: 0.8, vpc: 0.95 };
const ROUNDS = 5;

const stateDir = mkdtempSync(join(tmpdir(), 'kwb-modes-'));
process.env.KUBEWIRE_STATE_DIR = stateDir;
process.env.KUBECONFIG = join(stateDir, 'kubeconfig'); // the context up merges goes to the scratch state, never ~/.kube/config
const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const clusterOf = (m: Mode) => `kwbm${m.replace('-', '').slice(0, 4)}`;
/** A kubewire command for mode m's cluster; --cluster goes before a `--` (what follows it is the pod's command). */
const argv = (m: Mode, args: string[]) => {
  const at = args.indexOf('--');
  return at < 0 ? [...args, '--cluster', clusterOf(m)] : [...args.slice(0, at), '--cluster', clusterOf(m), ...args.slice(at)];
};
const kw = (m: Mode, args: string[], input?: string) => execFileSync(process.execPath, [BIN, ...argv(m, args)], { encoding: 'utf8', timeout: 180_000, env: process.env, ...(input ? { input } : {}) });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const line = (what: string, value: string, goal = '') => console.log(`${what.padEnd(44)}${value.padEnd(34)}${goal}`);
const cleanup = async () => {
  for (const m of MODES) await down(clusterOf(m)).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
};
cleanupOnInterrupt(cleanup);

async function running(m: Mode, namespace: string, n: number, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const pods = JSON.parse(kw(m, ['get', 'pods', '-n', namespace, '-o', 'json'])).items as Array<{ status?: { phase?: string } }>;
    if (pods.length === n && pods.every((p) => p.status?.phase === 'Running')) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${m}: ${n} pods did not run in ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** CPU time the machine has spent busy (all cores, /proc/stat), in seconds. */
function busySeconds(): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number); // idle and iowait left out
  return (user! + nice! + system! + irq! + softirq! + steal!) / 100; // USER_HZ
}

/** One iperf3 run from pod cli (node-1) to pod srv (node-2): bits per second received, and CPU seconds per GB moved (everything busy on the machine, both ends and the kernel between). */
async function throughput(m: Mode, srvIP: string): Promise<{ bps: number; cpuPerGB: number }> {
  const server = spawn(process.execPath, [BIN, 'exec', 'srv', '--cluster', clusterOf(m), '--', 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore', env: process.env });
  const exited = new Promise((r) => server.once('exit', r));
  try {
    for (let i = 0; ; i++) {
      await new Promise((r) => setTimeout(r, 300));
      try {
        const cpu0 = busySeconds();
        const out = JSON.parse(kw(m, ['exec', 'cli', '--', 'iperf3', '-c', srvIP, '-p', '5201', '-t', '4', '-J']));
        const bytes = out.end.sum_received.bytes as number;
        return { bps: out.end.sum_received.bits_per_second as number, cpuPerGB: (busySeconds() - cpu0) / (bytes / 1e9) };
      } catch (e) {
        if (i >= 10) throw e; // the server not listening yet
      }
    }
  } finally {
    server.kill();
    await exited;
  }
}

/** Average RTT (ms) of 200 pings from cli to srv, 2 ms apart. */
function latency(m: Mode, srvIP: string): number {
  const out = kw(m, ['exec', 'cli', '--', 'ping', '-q', '-c', '200', '-i', '0.002', srvIP]);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(out)?.[1];
  if (!avg) throw new Error(`${m}: no RTT in ${out}`);
  return Number(avg);
}

try {
  console.log(`kubewire bench:modes — 2 nodes per mode, pods on different nodes; ${new Date().toISOString()}`);
  for (const m of MODES) kw(m, ['up', '--nodes', '2', '--mode', m]);
  const srvIP: Partial<Record<Mode, string>> = {};
  for (const m of MODES) {
    kw(m, ['apply', '-f', '-'], [echoPod('cli', { node: `${clusterOf(m)}-node-1` }), echoPod('srv', { node: `${clusterOf(m)}-node-2` })].join('---\n'));
    await running(m, 'default', 2);
    srvIP[m] = JSON.parse(kw(m, ['get', 'pod', 'srv', '-o', 'json'])).status.podIP;
  }
  const bps: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const rtt: Record<string, number[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const m of MODES) {
      const t = await throughput(m, srvIP[m]!);
      (bps[m] ??= []).push(t.bps);
      (cpu[m] ??= []).push(t.cpuPerGB);
      (rtt[m] ??= []).push(latency(m, srvIP[m]!));
    }
  }
  const ref = median(bps.routed!);
  const refRtt = median(rtt.routed!);
  const refCpu = median(cpu.routed!);
  console.log(`\npod → pod across nodes (iperf3 4 s, 1 stream; ping RTT avg; CPU: all cores busy per GB moved), median of ${ROUNDS} interleaved rounds`);
  for (const m of MODES) {
    const g = GOAL[m];
    const ratio = median(bps[m]!) / ref;
    line(`  ${m}: throughput`, `${(median(bps[m]!) / 1e9).toFixed(2)} Gbit/s (${ratio.toFixed(2)}× routed)`, g ? `goal ≥ ${g}× routed: ${ratio >= g ? 'met' : 'MISSED'}` : '');
    line(`  ${m}: latency`, `${median(rtt[m]!).toFixed(3)} ms RTT (${(median(rtt[m]!) / refRtt).toFixed(2)}× routed)`);
    line(`  ${m}: CPU per GB`, `${median(cpu[m]!).toFixed(3)} s (${(median(cpu[m]!) / refCpu).toFixed(2)}× routed)`);
    line('', `rounds: ${bps[m]!.map((b) => (b / 1e9).toFixed(2)).join(', ')} Gbit/s`);
  }
  console.log('\npod setup: kubewire apply → every pod Running (one Deployment, pods spread over 2 nodes)');
  for (const n of [10, 40]) {
    const took: Partial<Record<Mode, number>> = {};
    for (const m of MODES) {
      const ns = `setup${n}`;
      const t0 = performance.now();
      kw(m, ['apply', '-f', '-'], `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${ns}}\n---\n${webApp({ replicas: n, namespace: ns, service: false })}`);
      await running(m, ns, n);
      took[m] = performance.now() - t0;
    }
    for (const m of MODES) line(`  ${m}: ${n} pods`, `${(took[m]! / 1000).toFixed(2)} s (${(took[m]! / took.routed!).toFixed(2)}× routed, ${(took[m]! / n).toFixed(0)} ms/pod)`);
  }
} finally {
  await cleanup();
}
