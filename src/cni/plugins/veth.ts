// What the plugins that make a veth pair per pod share (bridge, ptp): names and MACs for
// the pair, the alias by which GC finds a host end whose attachment is gone, and the check
// of what the IPAM plugin returned.

import { randomBytes } from 'node:crypto';
import { CniError, ErrorCode } from '../spec/errors.ts';
import type { IPConfig, Route, Result } from '../spec/types.ts';
import type { CmdArgs } from '../skel/skel.ts';
import { formatIP, formatPrefix, tryParseIP, tryParsePrefix, type Family } from '../../netaddr/ip.ts';

/** Host veths carry this alias so that GC can find those of attachments that are gone. */
const ALIAS_PREFIX = 'kubewire-cni';

export function vethAlias(network: string, containerID: string, ifName: string): string {
  return `${ALIAS_PREFIX} ${network} ${containerID} ${ifName}`;
}

export function parseVethAlias(alias: string | undefined): { network: string; containerID: string; ifName: string } | undefined {
  const parts = alias?.split(' ');
  if (!parts || parts.length !== 4 || parts[0] !== ALIAS_PREFIX) return undefined;
  return { network: parts[1]!, containerID: parts[2]!, ifName: parts[3]! };
}

export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function randomVethName(): string {
  return `veth${randomBytes(4).toString('hex')}`;
}

/** Fault injection for tests, like the reference's debugPostIPAMError. */
export function injectFault(args: CmdArgs, point: string): void {
  const fault = args.env.KUBEWIRE_CNI_FAULT;
  if (fault === point) throw new CniError(ErrorCode.Internal, `injected fault at ${point}`);
  if (fault === `kill-${point}`) process.kill(process.pid, 'SIGKILL');
}

export function familyOf(address: string): Family {
  return address.includes(':') ? 6 : 4;
}

/**
 * IPAM results may come from any plugin in CNI_PATH; everything that reaches an ip command
 * must be a well-formed address, so the result is checked (and canonicalised) first.
 */
export function checkIpamResult(ipam: Result): { ips: IPConfig[]; routes: Route[] } {
  const bad = (what: string, value: unknown): CniError => new CniError(ErrorCode.Internal, `IPAM plugin returned an invalid ${what}: ${JSON.stringify(value)}`);
  if (!ipam.ips?.length) throw new CniError(ErrorCode.Internal, 'IPAM plugin returned no IP configuration');
  const ips = ipam.ips.map((ip) => {
    const prefix = typeof ip.address === 'string' ? tryParsePrefix(ip.address) : undefined;
    if (!prefix) throw bad('address', ip.address);
    const gw = ip.gateway === undefined ? undefined : typeof ip.gateway === 'string' ? tryParseIP(ip.gateway) : undefined;
    if (ip.gateway !== undefined && !gw) throw bad('gateway', ip.gateway);
    return { address: formatPrefix(prefix), ...(gw ? { gateway: formatIP(gw) } : {}) };
  });
  const routes = (ipam.routes ?? []).map((r) => {
    const dst = typeof r.dst === 'string' ? tryParsePrefix(r.dst) : undefined;
    if (!dst) throw bad('route destination', r.dst);
    const gw = r.gw === undefined ? undefined : typeof r.gw === 'string' ? tryParseIP(r.gw) : undefined;
    if (r.gw !== undefined && !gw) throw bad('route gateway', r.gw);
    return { dst: formatPrefix(dst), ...(gw ? { gw: formatIP(gw) } : {}) };
  });
  return { ips, routes };
}

