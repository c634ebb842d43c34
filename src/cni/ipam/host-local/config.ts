// host-local's configuration: range sets, routes, data directory, requested IPs.
// Pure parsing and validation with the reference plugin's defaults.

import { CniError, ErrorCode } from '../../spec/errors.ts';
import type { NetConf, Route } from '../../spec/types.ts';
import {
  addToIP,
  compareIP,
  contains,
  firstIP,
  formatIP,
  formatPrefix,
  lastIP,
  networkOf,
  overlaps,
  tryParseIP,
  tryParsePrefix,
  type IP,
  type Prefix,
} from '../../../netaddr/ip.ts';

export interface Range {
  subnet: Prefix; // network address, host bits cleared
  rangeStart: IP;
  rangeEnd: IP;
  gateway?: IP;
}

/** One range set yields one IP per ADD: typically one IPv4 set and one IPv6 set. */
export type RangeSet = Range[];

export interface HostLocalConfig {
  network: string;
  dataDir: string;
  rangeSets: RangeSet[];
  routes: Route[];
  resolvConf?: string;
  /** IPs the runtime asked for (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips). */
  requested: IP[];
}

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

interface RawRange {
  subnet?: unknown;
  rangeStart?: unknown;
  rangeEnd?: unknown;
  gateway?: unknown;
}

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

export function parseHostLocalConfig(conf: NetConf, cniArgs: Map<string, string>): HostLocalConfig {
  const ipam = conf.ipam;
  if (!ipam || typeof ipam !== 'object') throw invalid('field "ipam" is required');
  const rawSets: unknown[] = [];
  const ipRanges = conf.runtimeConfig?.ipRanges;
  if (ipRanges !== undefined) {
    if (!Array.isArray(ipRanges)) throw invalid('runtimeConfig.ipRanges must be a list of range sets');
    rawSets.push(...ipRanges);
  }
  if (ipam.subnet !== undefined) rawSets.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges)) throw invalid('ipam.ranges must be a list of range sets (a list of lists)');
    rawSets.push(...ipam.ranges);
  }
  if (!rawSets.length) throw invalid('ipam: no IP ranges specified (set ipam.ranges or ipam.subnet)');

  const rangeSets = rawSets.map((set, i) => parseRangeSet(set, `ipam.ranges[${i}]`));
  for (let i = 0; i < rangeSets.length; i++) {
    for (let j = i + 1; j < rangeSets.length; j++) {
      for (const a of rangeSets[i]!) for (const b of rangeSets[j]!) {
        if (overlaps(a.subnet, b.subnet)) throw invalid(`ipam.ranges[${i}] and ipam.ranges[${j}] overlap (${formatPrefix(a.subnet)}, ${formatPrefix(b.subnet)})`);
      }
    }
  }

  const dataDir = ipam.dataDir ?? DEFAULT_DATA_DIR;
  if (typeof dataDir !== 'string' || !dataDir.startsWith('/')) throw invalid('ipam.dataDir must be an absolute path');
  if (ipam.resolvConf !== undefined && typeof ipam.resolvConf !== 'string') throw invalid('ipam.resolvConf must be a path');

  return {
    network: conf.name,
    dataDir,
    rangeSets,
    routes: parseRoutes(ipam.routes),
    resolvConf: ipam.resolvConf as string | undefined,
    requested: requestedIPs(conf, cniArgs),
  };
}

function parseRangeSet(raw: unknown, where: string): RangeSet {
  if (!Array.isArray(raw) || !raw.length) throw invalid(`${where} must be a non-empty list of ranges`);
  const set = raw.map((r, i) => parseRange(r as RawRange, `${where}[${i}]`));
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      const a = set[i]!;
      const b = set[j]!;
      if (a.subnet.ip.family !== b.subnet.ip.family) throw invalid(`${where} mixes IPv4 and IPv6 ranges`);
      if (compareIP(a.rangeStart, b.rangeEnd) <= 0 && compareIP(b.rangeStart, a.rangeEnd) <= 0) {
        throw invalid(`${where}: ranges ${i} and ${j} overlap`);
      }
    }
  }
  return set;
}

function ipField(value: unknown, field: string): IP | undefined {
  if (value === undefined || value === '') return undefined;
  const ip = typeof value === 'string' ? tryParseIP(value) : undefined;
  if (!ip) throw invalid(`${field}: ${JSON.stringify(value)} is not an IP address`);
  return ip;
}

export function parseRange(raw: RawRange, where: string): Range {
  if (typeof raw !== 'object' || raw === null) throw invalid(`${where} must be an object with a "subnet"`);
  const parsed = typeof raw.subnet === 'string' ? tryParsePrefix(raw.subnet) : undefined;
  if (!parsed) throw invalid(`${where}.subnet: ${JSON.stringify(raw.subnet)} is not a CIDR`);
  const subnet = networkOf(parsed);
  const width = subnet.ip.family === 4 ? 32 : 128;
  if (subnet.bits > width - 2) throw invalid(`${where}.subnet: network ${formatPrefix(subnet)} is too small to allocate from`);
  const inSubnet = (ip: IP | undefined, field: string): IP | undefined => {
    if (ip && !contains(subnet, ip)) throw invalid(`${where}.${field} ${formatIP(ip)} is not in subnet ${formatPrefix(subnet)}`);
    return ip;
  };
  const rangeStart = inSubnet(ipField(raw.rangeStart, `${where}.rangeStart`), 'rangeStart') ?? addToIP(firstIP(subnet), 1n);
  const defaultEnd = subnet.ip.family === 4 ? addToIP(lastIP(subnet), -1n) : lastIP(subnet);
  const rangeEnd = inSubnet(ipField(raw.rangeEnd, `${where}.rangeEnd`), 'rangeEnd') ?? defaultEnd;
  if (compareIP(rangeStart, rangeEnd) > 0) throw invalid(`${where}: rangeStart ${formatIP(rangeStart)} is after rangeEnd ${formatIP(rangeEnd)}`);
  const gateway = inSubnet(ipField(raw.gateway, `${where}.gateway`), 'gateway') ?? addToIP(firstIP(subnet), 1n);
  return { subnet, rangeStart, rangeEnd, gateway };
}

function parseRoutes(raw: unknown): Route[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw invalid('ipam.routes must be a list');
  return raw.map((r, i) => {
    const route = r as { dst?: unknown; gw?: unknown };
    if (typeof route?.dst !== 'string' || !tryParsePrefix(route.dst)) throw invalid(`ipam.routes[${i}].dst: ${JSON.stringify(route?.dst)} is not a CIDR`);
    if (route.gw !== undefined && (typeof route.gw !== 'string' || !tryParseIP(route.gw))) throw invalid(`ipam.routes[${i}].gw: ${JSON.stringify(route.gw)} is not an IP address`);
    return { dst: formatPrefix(networkOf(tryParsePrefix(route.dst)!)), ...(route.gw ? { gw: route.gw as string } : {}) };
  });
}

function requestedIPs(conf: NetConf, cniArgs: Map<string, string>): IP[] {
  const out: IP[] = [];
  const add = (value: unknown, source: string): void => {
    if (typeof value !== 'string') throw invalid(`${source}: ${JSON.stringify(value)} is not an IP address`);
    const text = value.includes('/') ? value.slice(0, value.indexOf('/')) : value;
    const ip = tryParseIP(text);
    if (!ip) throw invalid(`${source}: ${JSON.stringify(value)} is not an IP address`);
    out.push(ip);
  };
  const fromEnv = cniArgs.get('IP');
  if (fromEnv) for (const v of fromEnv.split(',')) add(v.trim(), 'CNI_ARGS IP');
  const argsIps = (conf.args?.cni as { ips?: unknown } | undefined)?.ips;
  if (argsIps !== undefined) {
    if (!Array.isArray(argsIps)) throw invalid('args.cni.ips must be a list');
    for (const v of argsIps) add(v, 'args.cni.ips');
  }
  const rtIps = conf.runtimeConfig?.ips;
  if (rtIps !== undefined) {
    if (!Array.isArray(rtIps)) throw invalid('runtimeConfig.ips must be a list');
    for (const v of rtIps) add(v, 'runtimeConfig.ips');
  }
  return out;
}
