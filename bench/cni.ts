// CNI ADD/DEL latency: kubewire's bridge + host-local against the reference plugins
// (Debian's containernetworking-plugins) on the same machine, same lab, interleaved.
//   npm run bench:cni [-- --iterations N]
// Prints p50/p99 for each and our/reference ratios. Reference figure from the issue: the
// reference bridge ADD with ipMasq took about 120 ms here (p50 about 90 ms in DESIGN.md).

import { existsSync } from 'node:fs';
import { installPlugins } from '../src/cni/install.ts';
import { execPlugin } from '../src/cni/invoke/exec.ts';
import { withLab } from '../src/lab/lab.ts';
import { parseConfList } from '../src/cni/runtime/conflist.ts';
import { CniRuntime } from '../src/cni/runtime/runtime.ts';
import { linux } from '../src/dataplane/linux/host.ts';

const REFERENCE_DIR = '/usr/lib/cni';
const iterations = Number(process.argv[process.argv.indexOf('--iterations') + 1]) || 40;

function conf(bridge: string, subnet: string, dataDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: `bench-${bridge}`,
    type: 'bridge',
    bridge,
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir },
  });
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function main(): Promise<void> {
  if (!existsSync(`${REFERENCE_DIR}/bridge`)) {
    console.error(`reference plugins not found in ${REFERENCE_DIR}: apt-get install containernetworking-plugins`);
    process.exit(1);
  }
  await withLab(`kwb-${process.pid}`, async (lab) => {
    const node = await lab.netns('node');
    const ours = lab.dir('bin');
    installPlugins({ dir: ours });
    const impls = [
      { name: 'kubewire', ifName: 'eth0', dir: ours, conf: conf('cni0', '10.88.0.0/16', lab.dir('ipam')) },
      { name: 'reference', ifName: 'eth1', dir: REFERENCE_DIR, conf: conf('cni1', '10.89.0.0/16', lab.dir('ipam')) },
    ];
    const pods: string[] = [];
    for (let i = 0; i < iterations; i++) pods.push(await lab.netns(`p${i}`));
    const times: Record<string, { add: number[]; del: number[]; version: number[] }> = {};
    for (const impl of impls) times[impl.name] = { add: [], del: [], version: [] };
    const call = async (impl: (typeof impls)[number], command: string, pod: string, i: number): Promise<number> => {
      const t0 = performance.now();
      await execPlugin({
        pluginPath: `${impl.dir}/bridge`,
        env: { CNI_COMMAND: command, CNI_CONTAINERID: `bench-${i}`, CNI_NETNS: pod, CNI_IFNAME: impl.ifName, CNI_PATH: impl.dir, PATH: process.env.PATH ?? '' },
        stdin: impl.conf,
        hostNetns: node,
      });
      return performance.now() - t0;
    };
    for (let i = 0; i < iterations; i++) {
      // Interleave the implementations so that drift in machine load hits both alike.
      for (const impl of i % 2 ? impls : [...impls].reverse()) {
        times[impl.name]!.version.push(await call(impl, 'VERSION', pods[i]!, i));
        times[impl.name]!.add.push(await call(impl, 'ADD', pods[i]!, i));
      }
    }
    for (let i = 0; i < iterations; i++) {
      for (const impl of i % 2 ? impls : [...impls].reverse()) times[impl.name]!.del.push(await call(impl, 'DEL', pods[i]!, i));
    }
    const row = (label: string, key: 'add' | 'del' | 'version'): void => {
      const o = times.kubewire![key];
      const r = times.reference![key];
      console.log(
        `${label.padEnd(8)} kubewire p50 ${quantile(o, 0.5).toFixed(1).padStart(6)} ms p99 ${quantile(o, 0.99).toFixed(1).padStart(6)} ms | ` +
          `reference p50 ${quantile(r, 0.5).toFixed(1).padStart(6)} ms p99 ${quantile(r, 0.99).toFixed(1).padStart(6)} ms | ` +
          `ratio p50 ${(quantile(o, 0.5) / quantile(r, 0.5)).toFixed(2)} p99 ${(quantile(o, 0.99) / quantile(r, 0.99)).toFixed(2)}`,
      );
    };
    console.log(`bridge + host-local, isGateway + ipMasq, ${iterations} pods each (goal: kubewire ADD p50 <= 0.5x reference)`);
    console.log('plugins executed as runtimes do (one process per call):');
    row('ADD', 'add');
    row('DEL', 'del');
    row('VERSION', 'version');

    // kubewire's runtime library can run its own plugins in-process (no process start):
    // what kubewire's node agent does. Same kernel work, same results.
    const list = parseConfList(Buffer.from(JSON.stringify({ ...JSON.parse(conf('cni2', '10.90.0.0/16', lab.dir('ipam'))), type: undefined, plugins: [JSON.parse(conf('cni2', '10.90.0.0/16', lab.dir('ipam2')))] })), 'bench');
    const rt = new CniRuntime({ dataplane: linux, path: [ours], cacheDir: lab.dir('cache'), hostNetns: node, inProcess: true });
    const inAdd: number[] = [];
    const inDel: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const t0 = performance.now();
      await rt.addNetworkList(list, { containerID: `inproc-${i}`, netns: pods[i]!, ifName: 'eth2' });
      inAdd.push(performance.now() - t0);
    }
    for (let i = 0; i < iterations; i++) {
      const t0 = performance.now();
      await rt.delNetworkList(list, { containerID: `inproc-${i}`, netns: pods[i]!, ifName: 'eth2' });
      inDel.push(performance.now() - t0);
    }
    const ref = times.reference!;
    console.log('kubewire runtime library, plugins in-process (the node agent\'s path), against the executed reference:');
    for (const [label, xs, r] of [['ADD', inAdd, ref.add], ['DEL', inDel, ref.del]] as const) {
      console.log(`${label.padEnd(8)} kubewire p50 ${quantile(xs, 0.5).toFixed(1).padStart(6)} ms p99 ${quantile(xs, 0.99).toFixed(1).padStart(6)} ms | reference p50 ${quantile(r, 0.5).toFixed(1).padStart(6)} ms | ratio p50 ${(quantile(xs, 0.5) / quantile(r, 0.5)).toFixed(2)}`);
    }
  });
}

await main();
