// The dataplane port on the real kernel: iproute2 batches, iptables-restore and nft
// transactions, conntrack, and the native helper where it saves a process (namespaces,
// sysctls, link state, sockets inside a namespace, locks). Failures come back as
// DataplaneErrors whose code is the kernel's errno, read from the tool's message.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { DataplaneError, isNotFound, NETNS_DIR, netnsPath, type Addressing, type ApplyOptions, type ConntrackFilter, type Dataplane, type DataplaneErrorCode, type FdbEntry, type FileLock, type IPFamily, type IptablesBackend, type IptablesTable, type LinkInfo, type NeighbourInfo, type NetnsState, type NftFamily, type NetOp, type Netns, type RouteInfo, type TraceSource, type TraceWatch } from '../port.ts';
import { parseConntrackList, parseIptablesSave, parseIpvsConnections, parseListeners, parseNftListing, type ConntrackFlow, type IptablesTableState, type IpvsConnection, type NftListFamily, type NftTableState, type RouteLookup, type SocketListener } from '../observations.ts';
import { parseNflogPcap, parseNftTrace } from '../trace-events.ts';
import { CommandError, run, startMonitor } from './exec.ts';
import { bridgeBatch, getLink, ipBatch, ipBatchJson, ipBatchWithSysctls, ipJson, linkRunning } from './ip.ts';
import { iptablesHasRule, iptablesRestore, iptablesSave, iptablesSaveCounted } from './iptables.ts';
import { lockFile } from './lock.ts';
import { netnsAddon, optionalNetnsAddon, OWN_NETNS } from './native.ts';
import { inspectNetns, netnsPids } from './netns.ts';
import { batches } from './render.ts';
import { setSysctls } from './sysctl.ts';

/** The errno a tool's message names, as a port error code. */
export function errorCode(message: string): DataplaneErrorCode {
  if (/File exists|already assigned/i.test(message)) return 'exists';
  if (/does not exist|Cannot find device|No such device|No such file or directory|No such process|No such service|No such destination|Cannot assign requested address|not found|Couldn't load target|Chain '.*' does not exist/i.test(message)) return 'not-found';
  if (/Device or resource busy|Too many links|Directory not empty/i.test(message)) return 'busy';
  if (/Invalid argument|is wrong|Nexthop has invalid gateway|Operation not supported|Error: either|syntax error|Bad argument|not a valid/i.test(message)) return 'invalid';
  return 'failed';
}

/** A failed tool call as a DataplaneError (anything else passes through). */
function portError(e: unknown): unknown {
  if (e instanceof CommandError) return new DataplaneError(errorCode(e.stderr || e.message), e.message);
  if (e instanceof Error && !(e instanceof DataplaneError)) return new DataplaneError(errorCode(e.message), e.message);
  return e;
}

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw portError(e);
  }
}

class LinuxNetns implements Netns {
  constructor(readonly path: string | undefined) {}

  apply(ops: NetOp[], opts: ApplyOptions = {}): Promise<LinkInfo | undefined> {
    const { sysctls, show } = opts;
    const runs = batches(ops);
    return guarded(async () => {
      const hasSysctls = sysctls && Object.keys(sysctls).length > 0;
      // The usual case, ip alone: sysctls and the batch in one process where the native helper cannot set them from here.
      if (show === undefined && runs.length <= 1 && (runs[0]?.tool ?? 'ip') === 'ip' && hasSysctls && this.path) {
        await ipBatchWithSysctls(this.path, sysctls!, runs[0]?.lines ?? []);
        return undefined;
      }
      if (hasSysctls) await setSysctls(this.path, sysctls!);
      for (const [i, batch] of runs.entries()) {
        const last = i === runs.length - 1;
        if (last && show !== undefined && batch.tool === 'ip') {
          const [link] = await ipBatchJson<LinkInfo[]>([...batch.lines, `addr show dev ${show}`], this.path);
          return link;
        }
        if (batch.tool === 'ip') await ipBatch(batch.lines, this.path);
        else if (batch.tool === 'bridge') await bridgeBatch(batch.lines, this.path);
        else for (const line of batch.lines) await run(['ethtool', ...line.split(' ')], { netns: this.path }); // ethtool has no batch mode
      }
      return show === undefined ? undefined : getLink(show, this.path);
    });
  }

  setSysctls(values: Record<string, string>): Promise<void> {
    return guarded(() => setSysctls(this.path, values));
  }

  async sysctl(key: string): Promise<string | undefined> {
    if (!this.path) return existsSync(`/proc/sys/${key}`) ? readFileSync(`/proc/sys/${key}`, 'utf8').trim() : undefined;
    return run(['cat', `/proc/sys/${key}`], { netns: this.path }).then((v) => v.trim(), () => undefined);
  }

  link(name: string): Promise<LinkInfo | undefined> {
    return guarded(() => getLink(name, this.path));
  }

  links(master?: string): Promise<LinkInfo[]> {
    return guarded(() => ipJson<LinkInfo[]>(['-details', 'addr', 'show', ...(master ? ['master', master] : [])], this.path));
  }

  linkRunning(name: string): Promise<boolean> {
    return guarded(() => linkRunning(name, this.path));
  }

  async routes(dev?: string): Promise<RouteInfo[]> {
    // `ip route` lists one family at a time.
    const lists = await guarded(() => Promise.all(['-4', '-6'].map((f) => ipJson<RouteInfo[]>([f, 'route', 'show', ...(dev ? ['dev', dev] : [])], this.path))));
    return lists.flat();
  }

  neighbours(dev?: string): Promise<NeighbourInfo[]> {
    return guarded(() => ipJson<NeighbourInfo[]>(['neigh', 'show', ...(dev ? ['dev', dev] : [])], this.path));
  }

  addressing(): Promise<Addressing> {
    return guarded(async () => {
      // A batch prints each command's JSON on a line of its own.
      const out = await run(['ip', '-json', '-details', '-batch', '-'], { input: 'address show\nroute show\nneigh show\n', netns: this.path });
      const [links = [], routes = [], neighbours = []] = out.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown[]);
      return { links, routes, neighbours } as Addressing;
    });
  }

  fdb(bridge: string): Promise<FdbEntry[]> {
    return guarded(async () => {
      const out = await run(['bridge', '-j', 'fdb', 'show', 'br', bridge], { netns: this.path });
      return (out.trim() ? JSON.parse(out) : []) as FdbEntry[];
    });
  }

  deviceFdb(dev: string): Promise<FdbEntry[]> {
    return guarded(async () => {
      const out = await run(['bridge', '-j', 'fdb', 'show', 'dev', dev], { netns: this.path });
      return (out.trim() ? JSON.parse(out) : []) as FdbEntry[];
    });
  }

  iptablesSave(table: IptablesTable, family: IPFamily = 4, backend?: IptablesBackend): Promise<string> {
    return guarded(() => iptablesSave(table, this.path, family, backend));
  }

  iptablesRestore(script: string, family: IPFamily = 4, backend?: IptablesBackend): Promise<void> {
    return guarded(() => iptablesRestore(script, this.path, family, backend));
  }

  iptablesHasRule(table: IptablesTable, chain: string, rule: string[], family: IPFamily = 4, backend?: IptablesBackend): Promise<boolean> {
    return guarded(() => iptablesHasRule(table, chain, rule, this.path, family, backend));
  }

  iptablesUsable(backend: IptablesBackend): Promise<boolean> {
    return run([`iptables-${backend}`, '-t', 'nat', '-S'], { netns: this.path }).then(() => true, () => false);
  }

  async nft(script: string): Promise<void> {
    if (script) await guarded(() => run(['nft', '-f', '-'], { netns: this.path, input: script }));
  }

  async nftTable(name: string, family: NftFamily = 'ip'): Promise<string | undefined> {
    try {
      return await run(['nft', 'list', 'table', family, name], { netns: this.path });
    } catch (e) {
      const err = portError(e);
      if (err instanceof DataplaneError && err.code === 'not-found') return undefined;
      throw err;
    }
  }

  async nftTables(family: NftFamily = 'ip'): Promise<string[]> {
    const out = await guarded(() => run(['nft', 'list', 'tables', family], { netns: this.path }));
    return out.split('\n').map((l) => new RegExp(`^table ${family} (\\S+)`).exec(l)?.[1]).filter((t): t is string => t !== undefined);
  }

  async ipsetRestore(script: string): Promise<void> {
    await guarded(() => run(['ipset', 'restore', '-exist'], { netns: this.path, input: script }));
  }

  async ipsetNames(): Promise<string[]> {
    const out = await guarded(() => run(['ipset', 'list', '-n'], { netns: this.path }));
    return out.split('\n').filter(Boolean);
  }

  ipvsSave(): Promise<string> {
    return guarded(() => run(['ipvsadm-save', '-n'], { netns: this.path }));
  }

  async ipvsRestore(lines: string[]): Promise<void> {
    // `ipvsadm -R`, not the ipvsadm-restore script: that one clears every virtual server first.
    if (lines.length) await guarded(() => run(['ipvsadm', '-R'], { netns: this.path, input: `${lines.join('\n')}\n` }));
  }

  async ipvsConnections(services?: string[]): Promise<Map<string, number>> {
    // A few virtual servers: listed one by one (listing all of 10,000 costs more than a few processes).
    if (!services || services.length > 8) return parseIpvsList(await guarded(() => run(['ipvsadm', '-Ln'], { netns: this.path })));
    const out = new Map<string, number>();
    for (const svc of services) {
      const text = await guarded(() => run(['ipvsadm', '-Ln', ...svc.split(' ')], { netns: this.path })).catch((e: unknown) => (isNotFound(e) ? '' : Promise.reject(e)));
      for (const [k, v] of parseIpvsList(text)) out.set(k, v);
    }
    return out;
  }

  async conntrackDelete(f: ConntrackFilter): Promise<number> {
    const argv = ['conntrack', '-D', ...(f.protocol ? ['-p', f.protocol] : []), ...(f.origDst ? ['--orig-dst', f.origDst] : []), ...(f.origDstPort !== undefined ? ['--orig-port-dst', String(f.origDstPort)] : []), ...(f.replySrc ? ['--reply-src', f.replySrc] : []), ...(f.mark ? ['--mark', f.mark] : [])];
    try {
      await run(argv, { netns: this.path });
      return 1;
    } catch (e) {
      // conntrack exits 1 when nothing matched ("0 flow entries have been deleted").
      if (e instanceof CommandError && e.exitCode === 1) return 0;
      throw portError(e);
    }
  }

  async conntrackList(filter: { mark?: string } = {}): Promise<ConntrackFlow[]> {
    return parseConntrackList(await guarded(() => run(['conntrack', '-L', ...(filter.mark ? ['--mark', filter.mark] : [])], { netns: this.path })));
  }

  async ipvsConnectionList(): Promise<IpvsConnection[]> {
    return parseIpvsConnections(await guarded(() => run(['ipvsadm', '-Lnc'], { netns: this.path })));
  }

  async nftRuleset(family?: NftListFamily): Promise<NftTableState[]> {
    return parseNftListing(await guarded(() => run(['nft', '-a', 'list', 'ruleset', ...(family ? [family] : [])], { netns: this.path })));
  }

  async nftTableState(name: string, family: NftListFamily): Promise<NftTableState | undefined> {
    try {
      return parseNftListing(await run(['nft', '-a', 'list', 'table', family, name], { netns: this.path }))[0];
    } catch (e) {
      const err = portError(e);
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async iptablesRules(tables?: IptablesTable[], family: IPFamily = 4, backend?: IptablesBackend): Promise<IptablesTableState[]> {
    // One table: read alone; several: one save of all of them (one process, not one each).
    const one = tables?.length === 1 ? tables[0] : undefined;
    const all = parseIptablesSave(await guarded(() => iptablesSaveCounted(one, this.path, family, backend)));
    // In the order asked for.
    return tables ? tables.flatMap((name) => all.filter((t) => t.table === name)) : all;
  }

  traceEvents(source: TraceSource): Promise<TraceWatch> {
    return guarded(async () => {
      const m = await startMonitor(source === 'nft' ? ['nft', 'monitor'] : ['tcpdump', '-i', 'nflog:0', '-U', '-w', '-', '-s', '512'], this.path);
      // tcpdump says when it reads: normally at once; in a user-mode kernel beside a busy cluster it has taken over 5 s.
      if (source === 'nflog') await m.until('listening on', 20_000).catch(async (e: unknown) => {
        await m.stop();
        throw e;
      });
      return {
        until: (change, timeoutMs) => m.until(change, timeoutMs),
        // SIGINT: both tools flush what they hold.
        stop: async () => {
          const out = await m.stop();
          return source === 'nft' ? parseNftTrace(out.toString('utf8')) : parseNflogPcap(out);
        },
      };
    });
  }

  async listeners(protocol: 'tcp' | 'udp', port: number): Promise<SocketListener[]> {
    return parseListeners(await guarded(() => run(['ss', '-Hlnp', protocol === 'tcp' ? '-t' : '-u', 'sport', '=', `:${port}`], { netns: this.path })));
  }

  async routeGet(dst: string, opts: { from?: string; iif?: string } = {}): Promise<RouteLookup> {
    const argv = ['ip', '-json', 'route', 'get', 'fibmatch', dst, ...(opts.from ? ['from', opts.from] : []), ...(opts.iif ? ['iif', opts.iif] : [])];
    let out: string;
    try {
      out = await run(argv, { netns: this.path });
    } catch (e) {
      // The kernel's reason alone ("Network is unreachable"), as a user reads it.
      const message = e instanceof CommandError ? e.message : (e as Error).message;
      const reason = /(?:RTNETLINK answers|Error): ([^\n]*)/.exec(message)?.[1]?.trim() ?? message;
      throw new DataplaneError(errorCode(message), reason);
    }
    const [route] = JSON.parse(out) as RouteLookup[];
    if (!route) throw new DataplaneError('not-found', 'no answer');
    return route;
  }

  exec(argv: string[], input?: string): Promise<string> {
    return guarded(() => run(argv, { netns: this.path, input }));
  }

  listen(protocol: 'tcp' | 'udp', port: number, backlog: number, address?: string): number {
    try {
      return netnsAddon().listenIn(this.path ?? OWN_NETNS, protocol, port, backlog, address);
    } catch (e) {
      throw portError(e);
    }
  }
}

export class LinuxDataplane implements Dataplane {
  at(path?: string): Netns {
    return new LinuxNetns(path);
  }

  async createNetns(name: string): Promise<Netns> {
    const path = netnsPath(name);
    if (existsSync(path)) throw new DataplaneError('exists', `network namespace ${JSON.stringify(name)} exists`);
    const addon = optionalNetnsAddon();
    await guarded(async () => (addon ? addon.promises.netnsAdd(path) : void (await run(['ip', 'netns', 'add', name]))));
    return this.at(path);
  }

  async listNetns(prefix = ''): Promise<string[]> {
    const names = existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : [];
    return names.filter((n) => n.startsWith(prefix)).sort();
  }

  async deleteNetns(name: string, opts: { leaveProcesses?: boolean } = {}): Promise<void> {
    const path = netnsPath(name);
    // Processes left inside would keep the namespace alive: end them first.
    for (const pid of opts.leaveProcesses ? [] : netnsPids(path)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (!existsSync(path)) return;
    const addon = optionalNetnsAddon();
    await guarded(async () => (addon ? addon.promises.netnsDel(path) : void (await run(['ip', 'netns', 'del', name]))));
  }

  netnsPath(name: string): string {
    return netnsPath(name);
  }

  netnsState(path: string, hostNetns?: string): NetnsState {
    return inspectNetns(path, hostNetns);
  }

  netnsPids(path: string): number[] {
    return netnsPids(path);
  }

  lock(path: string, mode: 'exclusive' | 'shared' = 'exclusive'): Promise<FileLock> {
    return lockFile(path, mode);
  }
}

/** The host's dataplane (one per process: it holds no state). */
export const linux: Dataplane = new LinuxDataplane();

const IPVS_PROTOCOLS: Record<string, string> = { TCP: '-t', UDP: '-u', SCTP: '--sctp-service' };

/** `ipvsadm -Ln` → connections (ActiveConn + InActConn) per real server, keyed as ipvsConnections says (pure). */
export function parseIpvsList(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let service: string | undefined;
  for (const line of text.split('\n')) {
    const vs = /^(TCP|UDP|SCTP)\s+(\S+)/.exec(line);
    if (vs) service = `${IPVS_PROTOCOLS[vs[1]!]} ${vs[2]}`;
    const rs = /^\s+->\s+(\S+)\s+\S+\s+\d+\s+(\d+)\s+(\d+)/.exec(line);
    if (rs && service) out.set(`${service} -r ${rs[1]}`, Number(rs[2]) + Number(rs[3]));
  }
  return out;
}
