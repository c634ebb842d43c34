// CNI ADD/DEL latency: kubewire's bridge + host-local against the reference plugins
// (Debian's containernetworking-plugins, /usr/lib/cni) on the same machine, same lab,
// interleaved. kubewire's plugins are executed two ways, as a runtime executes them: the C
// shim handing the call to a plugin server (`kubewire cni server`, its own process, as on a
// node), and the Node.js executable (a Node start per call).
//   npm run bench:cni [-- --iterations N]
// Prints p50/p99 for each, their ratios to the reference, and the machine's load.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { builtShimPath, installPlugins } from '../src/cni/install.ts';
import { execPlugin } from '../src/cni/invoke/exec.ts';
import { withLab } from '../src/lab/lab.ts';
import { parseConfList } from '../src/cni/runtime/conflist.ts';
import { CniRuntime } from '../src/cni/runtime/runtime.ts';
import { linux } from '../src/dataplane/linux/host.ts';

const REFERENCE_DIR = '/usr/lib/cni';

/** Each round starts with another implementation, so that drift in machine load hits all alike. */
function rotate<T>(xs: T[], i: number): T[] {
  return xs.map((_, k) => xs[(i + k) % xs.length]!);
}
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
  if (!builtShimPath()) {
    console.error('the CNI shim build/Release/kubewire-cni-shim is missing: npm install builds it (node-gyp)');
    process.exit(1);
  }
  const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
  const loadBefore = load();
  await withLab(`kwb-${process.pid}`, async (lab) => {
    const node = await lab.netns('node');
    const ours = lab.dir('bin');
    installPlugins({ dir: ours, shim: false });
    // The shim and its server: `kubewire cni server` in its own process, as on a node.
    const shimDir = lab.dir('shim-bin');
    const socket = `${lab.dir('run')}/cni.sock`;
    installPlugins({ dir: shimDir, socket });
    const server = spawn(process.execPath, [new URL('../bin/kubewire.js', import.meta.url).pathname, 'cni', 'server', '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      server.stderr!.on('data', (b: Buffer) => {
        err += b.toString();
        if (err.includes('serving')) resolve();
      });
      server.once('exit', (code) => reject(new Error(`kubewire cni server exited (${code}): ${err.trim()}`)));
      setTimeout(() => reject(new Error('kubewire cni server did not start within 30 s')), 30_000).unref();
    });
    const impls = [
      { name: 'shim', ifName: 'eth2', dir: shimDir, conf: conf('cni3', '10.91.0.0/16', lab.dir('ipam')) },
      { name: 'kubewire', ifName: 'eth0', dir: ours, conf: conf('cni0', '10.88.0.0/16', lab.dir('ipam')) },
      { name: 'reference', ifName: 'eth1', dir: REFERENCE_DIR, conf: conf('cni1', '10.89.0.0/16', lab.dir('ipam')) },
    ];
    const pods: string[] = [];
    const times: Record<string, { add: number[]; del: number[]; version: number[] }> = {};
    for (const impl of impls) times[impl.name] = { add: [], del: [], version: [] };
    try {
      for (let i = 0; i < iterations; i++) pods.push(await lab.netns(`p${i}`));
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
        for (const impl of rotate(impls, i)) {
          times[impl.name]!.version.push(await call(impl, 'VERSION', pods[i]!, i));
          times[impl.name]!.add.push(await call(impl, 'ADD', pods[i]!, i));
        }
      }
      for (let i = 0; i < iterations; i++) {
        for (const impl of rotate(impls, i)) times[impl.name]!.del.push(await call(impl, 'DEL', pods[i]!, i));
      }
    } finally {
      server.kill('SIGTERM');
    }
    const fmt = (xs: number[]): string => `p50 ${quantile(xs, 0.5).toFixed(1).padStart(6)} ms p99 ${quantile(xs, 0.99).toFixed(1).padStart(6)} ms`;
    const ratio = (xs: number[], r: number[]): string => `${(quantile(xs, 0.5) / quantile(r, 0.5)).toFixed(2)}x/${(quantile(xs, 0.99) / quantile(r, 0.99)).toFixed(2)}x`;
    const row = (label: string, key: 'add' | 'del' | 'version'): void => {
      const [s, o, r] = [times.shim![key], times.kubewire![key], times.reference![key]];
      console.log(`${label.padEnd(8)} shim+server ${fmt(s)} | node executable ${fmt(o)} | reference ${fmt(r)} | ratio p50/p99: shim ${ratio(s, r)} node ${ratio(o, r)}`);
    };
    console.log(`bridge + host-local, isGateway + ipMasq, ${iterations} pods each, interleaved; load before ${loadBefore}, after ${load()}`);
    console.log('plugins executed as runtimes do (one process per call); goal: shim ADD and DEL p50 <= 0.5x reference');
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
