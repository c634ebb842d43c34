// What the plugins that make a veth pair per pod share (bridge, ptp): names and MACs for
// the pair, the alias by which GC finds a host end whose attachment is gone, the check of
// what the IPAM plugin returned, and DEL, CHECK and GC of such an attachment.

import { randomBytes } from 'node:crypto';
import { CniError, ErrorCode, asCniError, withContext } from '../spec/errors.ts';
import type { IPConfig, Route, Result } from '../spec/types.ts';
import type { CmdArgs } from '../skel/skel.ts';
import { validAttachments } from '../spec/attachments.ts';
import { delegate } from '../ipam/delegate.ts';
import { isNotFound, type LinkInfo, type Netns } from '../../dataplane/port.ts';
import { formatIP, formatPrefix, tryParseIP, tryParsePrefix, type Family } from '../../netaddr/ip.ts';
import { familiesOf, gcMasq, teardownMasq } from './ipmasq.ts';
import { podNetnsPresent, requireNetns } from './sandbox.ts';

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


/** DEL: the pod's end of the pair (the host end, its addresses and routes go with it; a gone namespace took them all), IPAM DEL, the masquerade chain. */
export async function delVethAttachment(args: CmdArgs, ipMasq: boolean): Promise<void> {
  const dp = args.dataplane;
  await Promise.all([
    podNetnsPresent(dp, args) ? dp.at(args.netns).apply([{ op: 'link-del', name: args.ifName }]).catch((e) => { if (!isNotFound(e)) throw withContext(`failed to delete ${args.ifName}`, e); }) : undefined,
    delegate('DEL', args),
    // With prevResult we know which families to clean; without it, both.
    ipMasq ? teardownMasq(dp.at(args.hostNetns), args.conf.name, args.containerID, args.conf.prevResult?.ips?.length ? familiesOf(args.conf.prevResult.ips.map((ip) => ip.address)) : undefined, args.conf.prevResult?.ips?.map((ip) => ip.address)) : undefined,
  ]);
}

/**
 * CHECK against prevResult: IPAM's CHECK, then the pod's end (a veth in the namespace
 * prevResult names, with its MAC, addresses and routes) and the host end as its peer.
 * `bridge`: the host end must be a port of it (and prevResult's entry for the bridge is no host end).
 */
export async function checkVethAttachment(args: CmdArgs, bridge?: string): Promise<void> {
  requireNetns(args);
  const prev = args.conf.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, 'CHECK requires prevResult');
  await delegate('CHECK', args);
  const host = args.dataplane.at(args.hostNetns);
  const podNs = args.dataplane.at(args.netns);
  const [pod, routes] = await Promise.all([podNs.link(args.ifName), podNs.routes(args.ifName).catch(() => [])]);
  if (!pod) throw new CniError(ErrorCode.Internal, `interface ${args.ifName} does not exist in ${args.netns}`);
  if (pod.linkinfo?.info_kind !== 'veth') throw new CniError(ErrorCode.Internal, `interface ${args.ifName} in ${args.netns} is not a veth`);
  const podIf = prev.interfaces?.find((i) => i.name === args.ifName && i.sandbox);
  if (podIf && podIf.sandbox !== args.netns) throw new CniError(ErrorCode.Internal, `prevResult puts ${args.ifName} in ${podIf.sandbox}, not ${args.netns}`);
  if (podIf?.mac && podIf.mac.toLowerCase() !== pod.address.toLowerCase()) throw new CniError(ErrorCode.Internal, `interface ${args.ifName} has MAC ${pod.address}, expected ${podIf.mac}`);
  const hostIf = prev.interfaces?.find((i) => !i.sandbox && i.name !== bridge);
  if (hostIf) {
    const hostLink = await host.link(hostIf.name);
    if (!hostLink) throw new CniError(ErrorCode.Internal, `host veth ${hostIf.name} does not exist`);
    if (bridge && hostLink.master !== bridge) throw new CniError(ErrorCode.Internal, `host veth ${hostIf.name} is not a port of ${bridge}`);
    if (pod.link_index !== hostLink.ifindex) throw new CniError(ErrorCode.Internal, `${args.ifName} is not the peer of host veth ${hostIf.name}`);
  }
  const have = new Set((pod.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  for (const ip of prev.ips ?? []) {
    if (!have.has(ip.address)) throw new CniError(ErrorCode.Internal, `interface ${args.ifName} in ${args.netns} lacks address ${ip.address}`);
  }
  // The kernel lists both families' default routes as "default": the gateway tells them apart.
  const familyOfRoute = (k: { dst: string; gateway?: string }) => (k.dst !== 'default' ? familyOf(k.dst) : k.gateway ? familyOf(k.gateway) : undefined);
  for (const r of prev.routes ?? []) {
    const dst = r.dst === '0.0.0.0/0' || r.dst === '::/0' ? 'default' : r.dst;
    const found = routes.some((k) => (k.dst === dst || `${k.dst}/32` === dst || `${k.dst}/128` === dst) && (familyOfRoute(k) ?? familyOf(r.dst)) === familyOf(r.dst) && (!r.gw || k.gateway === r.gw));
    if (!found) throw new CniError(ErrorCode.Internal, `route to ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in ${args.netns}`);
  }
}

/**
 * GC: releases what attachments no longer valid left behind: IPs (IPAM GC), host ends found
 * by their alias among `hostEnds` (the links where they may be), masquerade chains. Every
 * step is tried; the failures are reported together.
 */
export async function gcVethAttachments(args: CmdArgs, ipMasq: boolean, hostEnds: (host: Netns) => Promise<LinkInfo[]>): Promise<void> {
  const valid = validAttachments(args.conf);
  const host = args.dataplane.at(args.hostNetns);
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try { await fn(); } catch (e) { errors.push(`${what}: ${asCniError(e).message}`); }
  };
  await attempt('IPAM GC', () => delegate('GC', args));
  await attempt('veth GC', async () => {
    const stale = (await hostEnds(host)).filter((l) => {
      const owner = parseVethAlias(l.ifalias);
      return owner && owner.network === args.conf.name && !valid.some((a) => a.containerID === owner.containerID && a.ifname === owner.ifName);
    });
    for (const l of stale) args.log(`gc: removing host veth ${l.ifname} (${l.ifalias})`);
    await host.apply(stale.map((l) => ({ op: 'link-del', name: l.ifname })));
  });
  if (ipMasq) await attempt('masquerade GC', () => gcMasq(host, args.conf.name, new Set(valid.map((a) => a.containerID)), args.log));
  if (errors.length) throw new CniError(ErrorCode.Internal, `GC incomplete: ${errors.join('; ')}`);
}
