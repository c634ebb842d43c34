// Shared test harness: plugins installed once per test file, plugin calls with the CNI
// environment, and the lab namespaces the tests create (always removed).
//
// Address plan: pod ranges 10.100.0.0/16 (one /24 per test), node underlay 192.168.200.0/24,
// bridges kwbr0..kwbr9. Every address lives inside lab namespaces only.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installPlugins } from '../src/cni/install.ts';
import { execPlugin } from '../src/cni/invoke/exec.ts';
import { CniError } from '../src/cni/spec/errors.ts';
import { run } from '../src/dataplane/linux/exec.ts';

export const REFERENCE_DIR = '/usr/lib/cni';
export const isRoot = process.getuid?.() === 0;
export const NOT_ROOT = isRoot ? false : 'needs root to create network namespaces';

let binDir: string | undefined;
/** Our plugins, installed into a scratch directory by `installPlugins` (what `kubewire cni install` does). */
export function pluginDir(): string {
  // A suite run again through another installation (test/cni-shim-differential: the shim and its server).
  if (process.env.KUBEWIRE_TEST_PLUGIN_DIR) return process.env.KUBEWIRE_TEST_PLUGIN_DIR;
  if (!binDir) {
    binDir = mkdtempSync(join(tmpdir(), 'kwt-bin-'));
    installPlugins({ dir: binDir });
    const dir = binDir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return binDir;
}

export interface Call {
  command: 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
  conf: object | string;
  containerID?: string;
  netns?: string;
  ifName?: string;
  hostNetns?: string;
  dir?: string;
  type?: string;
  env?: Record<string, string>;
}

export type Outcome = { ok: true; result: any } | { ok: false; error: CniError };

/** Runs one plugin as a runtime would: exec, CNI_* environment, config on stdin. */
export async function callPlugin(c: Call): Promise<Outcome> {
  const dir = c.dir ?? pluginDir();
  const conf = typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf);
  const type = c.type ?? (typeof c.conf === 'string' ? 'bridge' : (c.conf as { type: string }).type);
  const env: Record<string, string> = { CNI_COMMAND: c.command, CNI_PATH: dir, PATH: process.env.PATH ?? '', ...(c.env ?? {}) };
  if (c.containerID !== undefined) env.CNI_CONTAINERID = c.containerID;
  if (c.netns !== undefined) env.CNI_NETNS = c.netns;
  if (c.ifName !== undefined) env.CNI_IFNAME = c.ifName;
  try {
    return { ok: true, result: await execPlugin({ pluginPath: join(dir, type), env, stdin: conf, hostNetns: c.hostNetns }) };
  } catch (e) {
    if (e instanceof CniError) return { ok: false, error: e };
    throw e;
  }
}

export async function mustCall(c: Call): Promise<any> {
  const out = await callPlugin(c);
  if (!out.ok) throw new Error(`${c.command} failed: code ${out.error.code}: ${out.error.message}`);
  return out.result;
}

export function sh(netns: string, argv: string[]): Promise<string> {
  return run(argv, { netns });
}

export function bridgeConf(o: { name?: string; bridge: string; subnet: string; dataDir: string; version?: string; extra?: object; ipamExtra?: object }): Record<string, unknown> {
  return {
    cniVersion: o.version ?? '1.1.0',
    name: o.name ?? 'kwtest',
    type: 'bridge',
    bridge: o.bridge,
    isGateway: true,
    ...(o.extra ?? {}),
    ipam: { type: 'host-local', ranges: [[{ subnet: o.subnet }]], dataDir: o.dataDir, ...(o.ipamExtra ?? {}) },
  };
}

/** The machine's own network (root namespace): links, addresses, routes, rules; must never change. */
export async function rootState(): Promise<string> {
  const [links, addrs, routes, rules] = await Promise.all([
    run(['ip', '-o', 'link', 'show']),
    run(['ip', '-o', 'addr', 'show']),
    run(['ip', 'route', 'show', 'table', 'all']),
    run(['ip', 'rule', 'show']),
  ]);
  // Counters and link states of the machine's own interfaces change by themselves; names and addresses must not.
  return [links.split('\n').map((l) => l.split(':').slice(0, 2).join(':')).join('\n'), addrs.replace(/valid_lft.*$/gm, ''), routes, rules].join('\n--\n');
}
