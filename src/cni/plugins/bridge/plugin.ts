// The bridge plugin: a veth pair joins the pod's network namespace to a Linux bridge on the
// node; the bridge (optionally) is the pod's gateway. Same observable result as the
// reference plugin, in a few batched kernel calls through the dataplane port:
//   1. bridge + veth pair, then the bridge's state (one batch on the host)  ∥  IPAM ADD
//   2. pod sysctls, addresses and routes (one batch in the pod), then host sysctls and,
//      the first time, the gateway address (one batch on the host)  ∥  masquerade
//   3. only if the host end of the veth is not up yet: wait for it, as the reference does
// On Linux with the native helper, sysctls and the veth's state are asked without a
// process: two `ip` starts per ADD.

import { CniError, ErrorCode, asCniError, withContext } from '../../spec/errors.ts';
import type { Interface, IPConfig, Result, Route } from '../../spec/types.ts';
import type { CmdArgs, PluginFuncs } from '../../skel/skel.ts';
import { delegate } from '../../ipam/delegate.ts';
import { isExists, isNotFound, type LinkInfo, type Netns, type NetOp } from '../../../dataplane/port.ts';
import { requireNetns } from '../sandbox.ts';
import { addToIP, contains, defaultRoute, firstIP, formatIP, networkOf, parsePrefix, tryParsePrefix } from '../../../netaddr/ip.ts';
import { checkIpamResult, checkVethAttachment, delVethAttachment, familyOf, gcVethAttachments, injectFault, randomMac, randomVethName, vethAlias } from '../veth.ts';
import { parseBridgeConf, type BridgeConf } from './config.ts';
import { familiesOf, setupMasq, teardownMasq } from '../ipmasq.ts';

/** The gateway of each IP: as IPAM said, else the first address of its subnet (as the reference does). */
export function withGateways(ips: IPConfig[]): IPConfig[] {
  return ips.map((ip) => {
    if (ip.gateway) return { ...ip, interface: 2 };
    const prefix = parsePrefix(ip.address);
    return { ...ip, gateway: formatIP(addToIP(firstIP(networkOf(prefix)), 1n)), interface: 2 };
  });
}

/** IPAM's routes plus, for isDefaultGateway, a default route per family via its gateway. */
export function podRoutes(ips: IPConfig[], ipamRoutes: Route[], isDefaultGateway: boolean): Route[] {
  const routes = [...ipamRoutes];
  if (!isDefaultGateway) return routes;
  for (const family of [4, 6] as const) {
    const gw = ips.find((ip) => familyOf(ip.address) === family)?.gateway;
    const hasDefault = routes.some((r) => r.dst === defaultRoute(family));
    if (gw && !hasDefault) routes.push({ dst: defaultRoute(family), gw });
  }
  return routes;
}

/** The changes inside the pod: addresses, link up, routes (a route without gw uses its family's gateway). */
export function podOps(ifName: string, ips: IPConfig[], routes: Route[]): NetOp[] {
  const ops: NetOp[] = ips.map((ip) => ({ op: 'addr-add', dev: ifName, address: ip.address }));
  ops.push({ op: 'link-set', name: ifName, up: true });
  for (const r of routes) {
    const family = familyOf(r.dst);
    const gw = r.gw ?? ips.find((ip) => familyOf(ip.address) === family)?.gateway;
    ops.push({ op: 'route-add', dst: r.dst, ...(gw ? { via: gw } : {}), dev: ifName });
  }
  return ops;
}

/**
 * The changes that give the bridge its gateway addresses (removing those in the way when
 * forceAddress). A different address in the way is an error otherwise (the reference's ensureAddr).
 */
export function gatewayOps(conf: BridgeConf, bridge: LinkInfo | undefined, ips: IPConfig[]): NetOp[] {
  const ops: NetOp[] = [];
  const existing = (bridge?.addr_info ?? []).filter((a) => a.scope !== 'link');
  for (const ip of ips) {
    const bits = parsePrefix(ip.address).bits;
    const gw = parsePrefix(`${ip.gateway}/${bits}`);
    const family = gw.ip.family;
    let present = false;
    for (const a of existing) {
      if ((a.family === 'inet' ? 4 : 6) !== family) continue;
      const have = tryParsePrefix(`${a.local}/${a.prefixlen}`);
      if (!have) continue;
      if (have.ip.value === gw.ip.value) { present = true; continue; }
      if (family === 4 || contains(have, gw.ip) || contains(gw, have.ip)) {
        if (!conf.forceAddress) {
          throw new CniError(ErrorCode.Internal, `${JSON.stringify(conf.bridge)} already has an IP address different from ${ip.gateway}/${bits} (${a.local}/${a.prefixlen}); set forceAddress to replace it`);
        }
        ops.push({ op: 'addr-del', dev: conf.bridge, address: `${a.local}/${a.prefixlen}` });
      }
    }
    if (!present) ops.push({ op: 'addr-add', dev: conf.bridge, address: `${ip.gateway}/${bits}`, replace: true });
  }
  return ops;
}

interface Links {
  /** The bridge as it is after the batch (kind, MAC, addresses). */
  bridge: LinkInfo;
  hostVeth: string;
  hostMac: string;
  podMac: string;
}

/**
 * Step 1, one batch: the bridge (created if missing), the veth pair with its pod end named
 * ifName inside the pod, the host end on the bridge; the bridge as it is afterwards.
 */
async function setupLinks(conf: BridgeConf, args: CmdArgs): Promise<Links> {
  const podMac = conf.mac ?? randomMac();
  const host = args.dataplane.at(args.hostNetns);
  const pod = args.dataplane.at(args.netns);
  const alias = vethAlias(args.conf.name, args.containerID, args.ifName);
  // The bridge is taken to exist (all ADDs but a node's first): a batch that finds it
  // missing is run again with it.
  let create = false;
  for (let attempt = 0; ; attempt++) {
    const hostVeth = randomVethName();
    const hostMac = randomMac();
    const ops: NetOp[] = [
      // A fixed address: otherwise a bridge takes the lowest MAC of its ports and changes it as pods come and go.
      ...(create ? [{ op: 'link-add', name: conf.bridge, kind: 'bridge', mtu: conf.mtu, mac: randomMac() } as const] : []),
      { op: 'link-set', name: conf.bridge, up: true, ...(conf.promiscMode ? { promisc: true } : {}) },
      { op: 'veth-add', name: hostVeth, peer: args.ifName, peerNetns: args.netns, mtu: conf.mtu, mac: hostMac, peerMac: podMac },
      { op: 'link-set', name: hostVeth, master: conf.bridge, alias, ...(conf.hairpinMode ? { hairpin: true } : {}), up: true },
    ];
    try {
      const bridge = await host.apply(ops, { show: conf.bridge });
      if (bridge?.linkinfo?.info_kind !== 'bridge') throw new CniError(ErrorCode.Internal, `${JSON.stringify(conf.bridge)} is not a bridge`);
      return { bridge, hostVeth, hostMac, podMac };
    } catch (e) {
      // Undo whatever part of the batch ran: our veth, recognised by its alias (the name
      // itself may have been taken by another pod, which must be left alone).
      const made = await host.link(hostVeth).catch(() => undefined);
      if (made?.ifalias === alias) await host.apply([{ op: 'link-del', name: hostVeth }]).catch(() => undefined);
      const existing = await host.link(conf.bridge);
      if (existing && existing.linkinfo?.info_kind !== 'bridge') {
        throw new CniError(ErrorCode.Internal, `${JSON.stringify(conf.bridge)} already exists but is not a bridge`);
      }
      if (attempt >= 5) throw withContext('failed to create the bridge and veth pair', e);
      // The bridge was missing: make it, unless a parallel ADD has made it meanwhile.
      if (!create && isNotFound(e)) {
        create = !existing;
        continue;
      }
      if (!isExists(e)) throw withContext('failed to create the bridge and veth pair', e);
      // "File exists": a parallel ADD created the bridge first, the pod already has ifName,
      // or (rarely) the random host veth name was taken. Find out which.
      if (create && existing) {
        create = false;
        continue;
      }
      if (await pod.link(args.ifName).catch(() => undefined)) {
        throw new CniError(ErrorCode.Internal, `container interface ${JSON.stringify(args.ifName)} already exists in ${args.netns}`);
      }
    }
  }
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseBridgeConf(args.conf, args.args);
  requireNetns(args);
  const host = args.dataplane.at(args.hostNetns);
  const pod = args.dataplane.at(args.netns);
  const undo: Array<() => Promise<unknown>> = [];
  try {
    const [linksOutcome, ipamOutcome] = await Promise.allSettled([setupLinks(conf, args), delegate('ADD', args)]);
    if (linksOutcome.status === 'fulfilled') {
      const veth = linksOutcome.value.hostVeth;
      undo.push(() => host.apply([{ op: 'link-del', name: veth }]));
    }
    if (ipamOutcome.status === 'fulfilled') undo.push(() => delegate('DEL', args));
    if (linksOutcome.status === 'rejected') throw linksOutcome.reason;
    if (ipamOutcome.status === 'rejected') throw withContext('IPAM ADD failed', ipamOutcome.reason);
    const links = linksOutcome.value;
    injectFault(args, 'after-ipam');

    const checked = checkIpamResult(ipamOutcome.value!);
    const ips = withGateways(checked.ips);
    const routes = podRoutes(ips, checked.routes, conf.isDefaultGateway);
    const ipv4 = ips.filter((ip) => familyOf(ip.address) === 4).map((ip) => ip.address);
    const hostOps = conf.isGateway ? gatewayOps(conf, links.bridge, ips) : [];
    if (conf.ipMasq) undo.push(() => teardownMasq(host, args.conf.name, args.containerID, familiesOf(ips.map((ip) => ip.address))));

    // Step 2: the pod's side (sysctls first: accept_dad must precede IPv6 addresses), then
    // the host's (gateway address, and a look at the veth's state), beside the masquerade.
    const hostSysctls = {
      [`net/ipv6/conf/${conf.bridge}/accept_ra`]: '0',
      ...(conf.isGateway && ipv4.length ? { 'net/ipv4/ip_forward': '1' } : {}),
      ...(conf.isGateway && ipv4.length < ips.length ? { 'net/ipv6/conf/all/forwarding': '1' } : {}),
    };
    const podSysctls = { [`net/ipv4/conf/${args.ifName}/arp_notify`]: '1', [`net/ipv6/conf/${args.ifName}/accept_dad`]: '0' };
    const podThenHost = async (): Promise<void> => {
      try {
        await pod.apply(podOps(args.ifName, ips, routes), { sysctls: podSysctls });
      } catch (e) {
        throw withContext(`failed to configure ${args.ifName} in ${args.netns}`, e);
      }
      try {
        await host.apply(hostOps, { sysctls: hostSysctls });
      } catch (e) {
        throw withContext(`failed to configure the gateway on ${conf.bridge}`, e);
      }
    };
    await Promise.all([
      podThenHost(),
      conf.ipMasq ? setupMasq(host, args.conf.name, args.containerID, ips.map((ip) => ip.address)).catch((e) => { throw withContext('failed to set up IP masquerade', e); }) : undefined,
    ]);
    // Step 3: the reference answers only once the bridge port is up; so do we.
    if (!(await host.linkRunning(links.hostVeth))) await waitOperUp(links.hostVeth, host);

    const interfaces: Interface[] = [
      { name: conf.bridge, mac: links.bridge.address },
      { name: links.hostVeth, mac: links.hostMac },
      { name: args.ifName, mac: links.podMac, sandbox: args.netns },
    ];
    return { cniVersion: args.conf.cniVersion, interfaces, ips, routes, dns: args.conf.dns ?? {} };
  } catch (e) {
    for (const step of undo.reverse()) {
      await step().catch((u) => args.log(`rollback step failed: ${asCniError(u).message}`));
    }
    throw e;
  }
}

/**
 * The reference waits for the host end to be operationally up before answering (0/50/500/
 * 1000/1000 ms). Asking costs one ioctl here, not a netlink dump: ask often at first (the
 * kernel's linkwatch usually marks it within a few ms; a first wait of 20 ms was most of an
 * ADD served in-process), then as rarely, for about as long (3 s).
 */
async function waitOperUp(hostVeth: string, host: Netns): Promise<void> {
  for (const delay of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000]) {
    await new Promise((r) => setTimeout(r, delay));
    if (await host.linkRunning(hostVeth)) return;
  }
  throw new CniError(ErrorCode.Internal, `bridge port ${hostVeth} is not up (in error state)`);
}

async function del(args: CmdArgs): Promise<void> {
  await delVethAttachment(args, parseBridgeConf(args.conf, args.args).ipMasq);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args.conf, args.args);
  requireNetns(args);
  const bridge = await args.dataplane.at(args.hostNetns).link(conf.bridge);
  if (!bridge || bridge.linkinfo?.info_kind !== 'bridge') throw new CniError(ErrorCode.Internal, `bridge ${conf.bridge} does not exist`);
  await checkVethAttachment(args, conf.bridge);
}

/** Removes what attachments no longer valid left behind: IPs (via IPAM), host veths (ports of the bridge), masquerade chains. */
async function gc(args: CmdArgs): Promise<void> {
  const conf = parseBridgeConf(args.conf, args.args);
  await gcVethAttachments(args, conf.ipMasq, (host) => host.links(conf.bridge).catch((e) => { if (isNotFound(e)) return []; throw e; }));
}

async function status(args: CmdArgs): Promise<void> {
  parseBridgeConf(args.conf, args.args);
  await delegate('STATUS', args);
}

export const bridge: PluginFuncs = { add, del, check, gc, status };

