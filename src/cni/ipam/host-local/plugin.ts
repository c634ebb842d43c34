// host-local IPAM: hands out IPs from the node's ranges, one per range set, recorded on disk.
// Unlike the reference plugin it implements GC (releasing IPs of attachments that are no
// longer valid, the classic leak after a crash or reboot) and STATUS.

import { readFileSync } from 'node:fs';
import type { Dataplane } from '../../../dataplane/port.ts';
import { validAttachments } from '../../spec/attachments.ts';
import { CniError, ErrorCode } from '../../spec/errors.ts';
import type { Attachment, DNS, IPConfig, Result } from '../../spec/types.ts';
import type { CmdArgs, PluginFuncs } from '../../skel/skel.ts';
import { formatIP, formatPrefix, parseIP, type IP } from '../../../netaddr/ip.ts';
import { nextFree, rangeOf } from './allocator.ts';
import { parseHostLocalConfig, type HostLocalConfig } from './config.ts';
import { DiskStore, ownedBy, type Owner } from './disk-store.ts';

async function withStore<T>(dp: Dataplane, cfg: HostLocalConfig, fn: (store: DiskStore) => Promise<T>): Promise<T> {
  const store = new DiskStore(cfg.dataDir, cfg.network);
  const lock = await store.lock(dp);
  try {
    return await fn(store);
  } finally {
    lock.release();
  }
}

function setName(cfg: HostLocalConfig, i: number): string {
  return cfg.rangeSets[i]!.map((r) => formatPrefix(r.subnet)).join(',');
}

export async function allocate(cfg: HostLocalConfig, store: DiskStore, owner: Owner): Promise<IPConfig[]> {
  const { allocations, lastReserved } = await store.snapshot();
  const reserved: string[] = [];
  const requested = [...cfg.requested];
  try {
    const ips: IPConfig[] = [];
    for (const [i, set] of cfg.rangeSets.entries()) {
      for (const [ip, o] of allocations) {
        if (ownedBy(o, owner.containerID, owner.ifname) && o.ifname && rangeOf(set, parseIP(ip))) {
          throw new CniError(ErrorCode.Internal, `${ip} has been allocated to ${owner.containerID}, duplicate allocation is not allowed`);
        }
      }
      let ip: IP | undefined;
      const want = requested.findIndex((r) => rangeOf(set, r));
      if (want >= 0) {
        ip = requested.splice(want, 1)[0]!;
        if (allocations.has(formatIP(ip))) {
          throw new CniError(ErrorCode.Internal, `requested IP address ${formatIP(ip)} is not available in range set ${setName(cfg, i)}`);
        }
      } else {
        const lastText = lastReserved(i);
        const last = lastText ? safeIP(lastText) : undefined;
        ip = nextFree(set, (c) => allocations.has(formatIP(c)), last);
        if (!ip) {
          throw new CniError(ErrorCode.TryAgainLater, `no IP addresses available in range set ${setName(cfg, i)} (${allocations.size} allocated)`);
        }
      }
      const text = formatIP(ip);
      if (!(await store.reserve(text, owner, want < 0 ? i : undefined))) {
        throw new CniError(ErrorCode.TryAgainLater, `IP ${text} was taken by another process`);
      }
      reserved.push(text);
      const range = rangeOf(set, ip)!;
      ips.push({ address: `${text}/${range.subnet.bits}`, ...(range.gateway ? { gateway: formatIP(range.gateway) } : {}) });
    }
    if (requested.length) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `requested IP address ${formatIP(requested[0]!)} is not in any configured range`);
    }
    return ips;
  } catch (e) {
    for (const ip of reserved) store.release(ip);
    throw e;
  }
}

function safeIP(text: string): IP | undefined {
  try {
    return parseIP(text);
  } catch {
    return undefined;
  }
}

function readResolvConf(path: string): DNS {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `ipam.resolvConf ${path} cannot be read: ${(e as Error).message}`);
  }
  const dns: DNS = {};
  for (const line of text.split('\n')) {
    const [key, ...values] = line.trim().split(/\s+/);
    if (key === 'nameserver' && values[0]) (dns.nameservers ??= []).push(values[0]);
    else if (key === 'domain' && values[0]) dns.domain = values[0];
    else if (key === 'search') dns.search = values;
    else if (key === 'options') (dns.options ??= []).push(...values);
  }
  return dns;
}

export function isValidOwner(owner: Owner, valid: Attachment[]): boolean {
  return valid.some((a) => ownedBy(owner, a.containerID, a.ifname));
}

export const hostLocal: PluginFuncs = {
  async add(args: CmdArgs): Promise<Result> {
    const cfg = parseHostLocalConfig(args.conf, args.args);
    const dns = cfg.resolvConf ? readResolvConf(cfg.resolvConf) : undefined;
    const ips = await withStore(args.dataplane, cfg, (store) => allocate(cfg, store, { containerID: args.containerID, ifname: args.ifName }));
    return { cniVersion: args.conf.cniVersion, ips, routes: cfg.routes, ...(dns ? { dns } : {}) };
  },

  async del(args: CmdArgs): Promise<void> {
    const cfg = parseHostLocalConfig(args.conf, args.args);
    await withStore(args.dataplane, cfg, async (store) => {
      for (const [ip, owner] of await store.allocations()) {
        if (ownedBy(owner, args.containerID, args.ifName)) store.release(ip);
      }
    });
  },

  async check(args: CmdArgs): Promise<void> {
    const cfg = parseHostLocalConfig(args.conf, args.args);
    await withStore(args.dataplane, cfg, async (store) => {
      const mine = [...(await store.allocations())].filter(([, o]) => ownedBy(o, args.containerID, args.ifName)).map(([ip]) => ip);
      cfg.rangeSets.forEach((set, i) => {
        if (!mine.some((ip) => rangeOf(set, parseIP(ip)))) {
          throw new CniError(ErrorCode.Internal, `host-local: no address in range set ${setName(cfg, i)} is recorded for container ${args.containerID} interface ${args.ifName}`);
        }
      });
    });
  },

  async gc(args: CmdArgs): Promise<void> {
    const cfg = parseHostLocalConfig(args.conf, args.args);
    const valid = validAttachments(args.conf);
    await withStore(args.dataplane, cfg, async (store) => {
      for (const [ip, owner] of await store.allocations()) {
        if (!isValidOwner(owner, valid)) {
          args.log(`gc: releasing ${ip} held by ${owner.containerID || '(unknown)'}/${owner.ifname || '-'}`);
          store.release(ip);
        }
      }
    });
  },

  async status(args: CmdArgs): Promise<void> {
    const cfg = parseHostLocalConfig(args.conf, args.args);
    let full: number | undefined;
    try {
      full = await withStore(args.dataplane, cfg, async (store) => {
        const taken = await store.allocations();
        return cfg.rangeSets.findIndex((set) => !nextFree(set, (c) => taken.has(formatIP(c))));
      });
    } catch (e) {
      throw new CniError(ErrorCode.PluginNotAvailable, `host-local: data directory ${cfg.dataDir} is not usable: ${(e as Error).message}`);
    }
    if (full >= 0) throw new CniError(ErrorCode.PluginNotAvailable, `host-local: no IP addresses available in range set ${setName(cfg, full)}`);
  },
};
