// The CNI runtime library (what libcni is to Go runtimes): runs a network configuration
// list against a container — ADD chained with prevResult, DEL in reverse from the cached
// result, CHECK, STATUS, GC with the valid attachments — and keeps libcni's result cache.

import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Dataplane } from '../../dataplane/port.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';
import { atLeast, convertResult, normalizeResult, type Attachment, type Result } from '../spec/types.ts';
import { validateContainerID, validateIfName } from '../spec/names.ts';
import { execPlugin, findInPath, pluginOutput } from '../invoke/exec.ts';
import { isKubewirePlugin } from '../invoke/marker.ts';
import { PLUGINS } from '../plugins/registry.ts';
import { runPlugin } from '../skel/skel.ts';
import { parseConfList, type NetworkConfigList, type PluginConf } from './conflist.ts';

export interface RuntimeConf {
  containerID: string;
  /** Path of the container's network namespace (empty on a DEL after it is gone). */
  netns: string;
  ifName: string;
  /** CNI_ARGS pairs, e.g. K8S_POD_NAME. */
  args?: Array<[string, string]>;
  /** Capability arguments (portMappings, ips, mac, bandwidth, ...), passed to plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

export interface RuntimeOptions {
  /** Directories searched for plugin executables (CNI_PATH). */
  path: string[];
  /** Root of the result cache; results go to <cacheDir>/results. Default /var/lib/cni. */
  cacheDir?: string;
  /** Runs plugins inside this network namespace: the lab node that plays the host. */
  hostNetns?: string;
  /**
   * Runs kubewire's own plugins (recognised by their marker in CNI_PATH) in this process
   * instead of executing them: the same code and results without a process start per call.
   * Other plugins are always executed.
   */
  inProcess?: boolean;
  /** Where in-process plugins' logs go (default: stderr). */
  log?: (line: string) => void;
  /** How in-process plugins reach the kernel. */
  dataplane: Dataplane;
}

type PluginCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC';

interface CachedAttachment {
  kind: 'cniCacheV1';
  containerId: string;
  config: string;
  ifName: string;
  networkName: string;
  netns: string;
  cniArgs?: Array<[string, string]>;
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

export class CniRuntime {
  private readonly cacheDir: string;

  constructor(private readonly opts: RuntimeOptions) {
    this.cacheDir = opts.cacheDir ?? '/var/lib/cni';
  }

  async addNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<Result> {
    checkRuntimeConf(rt, 'ADD');
    let prev: Result | undefined;
    for (const plugin of list.plugins) {
      const out = await this.invoke('ADD', list, plugin, rt, prev);
      if (out === undefined) throw new CniError(ErrorCode.DecodingFailure, `plugin ${plugin.type} returned no result for ADD`);
      prev = normalizeResult(out, `result of plugin ${plugin.type}`);
    }
    await this.writeCache(list, rt, prev!);
    return prev!;
  }

  async delNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    checkRuntimeConf(rt, 'DEL');
    const cached = this.readCache(list.name, rt.containerID, rt.ifName);
    const prev = atLeast(list.cniVersion, '0.4.0') && cached?.result ? normalizeResult(cached.result, 'cached result') : undefined;
    for (const plugin of [...list.plugins].reverse()) await this.invoke('DEL', list, plugin, rt, prev);
    await rm(this.cachePath(list.name, rt.containerID, rt.ifName), { force: true });
  }

  async checkNetworkList(list: NetworkConfigList, rt: RuntimeConf): Promise<void> {
    checkRuntimeConf(rt, 'CHECK');
    if (!atLeast(list.cniVersion, '0.4.0')) throw new CniError(ErrorCode.IncompatibleVersion, `network ${list.name}: configuration version ${list.cniVersion} does not support the CHECK command`);
    if (list.disableCheck) return;
    const cached = this.readCache(list.name, rt.containerID, rt.ifName);
    if (!cached?.result) throw new CniError(ErrorCode.UnknownContainer, `network ${list.name}: no cached result for ${rt.containerID}/${rt.ifName}; was it added?`);
    const prev = normalizeResult(cached.result, 'cached result');
    for (const plugin of list.plugins) await this.invoke('CHECK', list, plugin, rt, prev);
  }

  async getStatusNetworkList(list: NetworkConfigList): Promise<void> {
    if (!atLeast(list.cniVersion, '1.1.0')) return; // STATUS arrived in 1.1.0; older networks are assumed ready
    for (const plugin of list.plugins) await this.invoke('STATUS', list, plugin, undefined, undefined);
  }

  /**
   * GC: DELs every cached attachment of the network that is not in `valid`, then asks each
   * plugin to release what else it holds for attachments not in `valid`. Errors are collected
   * and the work goes on, as the spec asks.
   */
  async gcNetworkList(list: NetworkConfigList, valid: Attachment[]): Promise<void> {
    const errors: string[] = [];
    const isValid = (a: Attachment): boolean => valid.some((v) => v.containerID === a.containerID && v.ifname === a.ifname);
    for (const cached of this.cachedAttachments(list.name)) {
      if (isValid({ containerID: cached.containerId, ifname: cached.ifName })) continue;
      try {
        const cachedList = parseConfList(Buffer.from(cached.config, 'base64'), `cached config of ${cached.containerId}`);
        await this.delNetworkList(cachedList, { containerID: cached.containerId, ifName: cached.ifName, netns: cached.netns, args: cached.cniArgs, capabilityArgs: cached.capabilityArgs });
      } catch (e) {
        errors.push(`DEL ${cached.containerId}/${cached.ifName}: ${(e as Error).message}`);
      }
    }
    if (!list.disableGC && atLeast(list.cniVersion, '1.1.0')) {
      for (const plugin of list.plugins) {
        try {
          await this.invoke('GC', list, plugin, undefined, undefined, valid);
        } catch (e) {
          errors.push(`GC ${plugin.type}: ${(e as Error).message}`);
        }
      }
    }
    if (errors.length) throw new CniError(ErrorCode.Internal, `network ${list.name}: GC incomplete`, errors.join('; '));
  }

  async getVersionInfo(pluginType: string): Promise<{ cniVersion: string; supportedVersions: string[] }> {
    const path = findInPath(pluginType, this.opts.path);
    const out = await execPlugin({ pluginPath: path, env: { CNI_COMMAND: 'VERSION', PATH: process.env.PATH ?? '' }, stdin: JSON.stringify({ cniVersion: '1.1.0' }), hostNetns: this.opts.hostNetns });
    return out as { cniVersion: string; supportedVersions: string[] };
  }

  /** The attachments of `network` in the result cache (what a GC compares against). */
  cachedAttachments(network: string): CachedAttachment[] {
    const dir = join(this.cacheDir, 'results');
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return [];
    }
    const out: CachedAttachment[] = [];
    for (const name of names.filter((n) => n.startsWith(`${network}-`))) {
      try {
        const c = JSON.parse(readFileSync(join(dir, name), 'utf8')) as CachedAttachment;
        if (c.kind === 'cniCacheV1' && c.networkName === network) out.push(c);
      } catch {
        // a corrupt entry is ignored, as libcni does
      }
    }
    return out;
  }

  private async invoke(command: PluginCommand, list: NetworkConfigList, plugin: PluginConf, rt: RuntimeConf | undefined, prev: Result | undefined, valid?: Attachment[]): Promise<unknown> {
    const conf = pluginConfig(list, plugin, rt?.capabilityArgs, prev);
    if (valid) {
      conf['cni.dev/valid-attachments'] = valid;
      conf['cni.dev/attachments'] = valid; // the key's older name, which 1.1.0 plugins may read
    }
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_PATH: this.opts.path.join(':'),
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    };
    if (rt) {
      env.CNI_CONTAINERID = rt.containerID;
      env.CNI_NETNS = rt.netns;
      env.CNI_IFNAME = rt.ifName;
      if (rt.args?.length) env.CNI_ARGS = rt.args.map(([k, v]) => `${k}=${v}`).join(';');
    }
    const path = findInPath(plugin.type, this.opts.path);
    const local = this.opts.inProcess ? PLUGINS[plugin.type] : undefined;
    if (local && isKubewirePlugin(path)) {
      let stdout = '';
      const log = this.opts.log ?? ((line: string) => void process.stderr.write(line));
      const code = await runPlugin(plugin.type, local, { env, stdin: Buffer.from(JSON.stringify(conf)), stdout: (t) => (stdout += t), stderr: log }, this.opts.dataplane, this.opts.hostNetns);
      return pluginOutput(path, code, null, stdout, '');
    }
    return execPlugin({ pluginPath: path, env, stdin: JSON.stringify(conf), hostNetns: this.opts.hostNetns });
  }

  private cachePath(network: string, containerID: string, ifName: string): string {
    return join(this.cacheDir, 'results', `${network}-${containerID}-${ifName}`);
  }

  private readCache(network: string, containerID: string, ifName: string): CachedAttachment | undefined {
    try {
      const c = JSON.parse(readFileSync(this.cachePath(network, containerID, ifName), 'utf8')) as CachedAttachment;
      return c.kind === 'cniCacheV1' ? c : undefined;
    } catch {
      return undefined; // missing or corrupt: DEL goes on without prevResult
    }
  }

  /** Written beside and renamed over (a crash leaves the old entry or the new), off the event loop: on ext4 the rename starts the file's writeback. */
  private async writeCache(list: NetworkConfigList, rt: RuntimeConf, result: Result): Promise<void> {
    const dir = join(this.cacheDir, 'results');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const entry: CachedAttachment = {
      kind: 'cniCacheV1',
      containerId: rt.containerID,
      config: list.bytes.toString('base64'),
      ifName: rt.ifName,
      networkName: list.name,
      netns: rt.netns,
      cniArgs: rt.args,
      capabilityArgs: rt.capabilityArgs,
      result: convertResult(result, list.cniVersion),
    };
    const path = this.cachePath(list.name, rt.containerID, rt.ifName);
    await writeFile(`${path}.tmp`, JSON.stringify(entry), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }
}

/**
 * The configuration one plugin receives: its own object plus the list's name and version,
 * runtimeConfig = its capabilities ∩ the runtime's capability args, and prevResult.
 */
export function pluginConfig(list: NetworkConfigList, plugin: PluginConf, capabilityArgs: Record<string, unknown> | undefined, prev: Result | undefined): Record<string, unknown> {
  const { capabilities, ...rest } = plugin;
  const conf: Record<string, unknown> = { ...rest, cniVersion: list.cniVersion, name: list.name };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, enabled] of Object.entries(capabilities ?? {})) {
    if (enabled && capabilityArgs?.[cap] !== undefined) runtimeConfig[cap] = capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
  if (prev) conf.prevResult = convertResult(prev, list.cniVersion);
  return conf;
}

function checkRuntimeConf(rt: RuntimeConf, command: string): void {
  const idProblem = validateContainerID(rt.containerID);
  if (idProblem) throw new CniError(ErrorCode.InvalidEnvironment, `${command}: container ID ${idProblem}`);
  const ifProblem = validateIfName(rt.ifName);
  if (ifProblem) throw new CniError(ErrorCode.InvalidEnvironment, `${command}: interface name ${ifProblem}`);
}
