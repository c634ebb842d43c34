// The ptp plugin: a point-to-point veth pair per pod, no bridge. The pod's end holds its
// address; every destination, its own subnet included, goes via the gateway, which is the
// host's end of the pair (gateway/32 on it) and answers the pod's ARP. The host reaches the
// pod by a /32 host route through the pair. Same observable result as the reference plugin:
//   1. the veth pair, its host end up  ∥  IPAM ADD
//   2. in the pod: addresses, link up, the kernel's prefix route replaced by a route to the
//      gateway alone and the subnet via it, then IPAM's routes (one batch); then on the host
//      the gateway address and the host route (one batch)  ∥  masquerade

import { CniError, ErrorCode, asCniError, withContext } from '../../spec/errors.ts';
import type { Interface, IPConfig, Result, Route } from '../../spec/types.ts';
import type { CmdArgs, PluginFuncs } from '../../skel/skel.ts';
import { delegate } from '../../ipam/delegate.ts';
import type { Netns, NetOp } from '../../../dataplane/port.ts';
import { requireNetns } from '../sandbox.ts';
import { formatPrefix, networkOf, parsePrefix } from '../../../netaddr/ip.ts';
import { familiesOf, setupMasq, teardownMasq } from '../ipmasq.ts';
import { checkIpamResult, checkVethAttachment, delVethAttachment, familyOf, gcVethAttachments, injectFault, randomMac, randomVethName, vethAlias } from '../veth.ts';
import { parsePtpConf } from './config.ts';

/** The host route to each pod address: /32 (/128) through the host end, scope host as the reference sets it. */
const hostBits = (address: string): number => (familyOf(address) === 4 ? 32 : 128);

/** The pod's side (pure): addresses, link up, then per address the gateway alone on the link and its subnet via the gateway; IPAM's routes last. */
export function ptpPodOps(ifName: string, ips: IPConfig[], routes: Route[]): NetOp[] {
  const ops: NetOp[] = ips.map((ip) => ({ op: 'addr-add', dev: ifName, address: ip.address }));
  ops.push({ op: 'link-set', name: ifName, up: true });
  for (const ip of ips) {
    const address = ip.address.split('/')[0]!;
    const subnet = formatPrefix(networkOf(parsePrefix(ip.address)));
    ops.push(
      // The kernel's route to the whole subnet on the link would have the pod ARP for its neighbours: it must ask the gateway.
      { op: 'route-del', dst: subnet, dev: ifName },
      { op: 'route-add', dst: `${ip.gateway}/${hostBits(ip.address)}`, dev: ifName, scope: 'link', src: address },
      { op: 'route-add', dst: subnet, via: ip.gateway, dev: ifName, src: address },
    );
  }
  for (const r of routes) {
    const gw = r.gw ?? ips.find((ip) => familyOf(ip.address) === familyOf(r.dst))?.gateway;
    ops.push({ op: 'route-add', dst: r.dst, ...(gw ? { via: gw } : {}), dev: ifName });
  }
  return ops;
}

/** The host's side (pure): each gateway address on the host end (the same gateway may sit on every pod's veth), and a host route to each pod address. */
export function ptpHostOps(hostVeth: string, ips: IPConfig[]): NetOp[] {
  return ips.flatMap((ip): NetOp[] => [
    { op: 'addr-add', dev: hostVeth, address: `${ip.gateway}/${hostBits(ip.address)}`, replace: true },
    { op: 'route-add', dst: `${ip.address.split('/')[0]}/${hostBits(ip.address)}`, dev: hostVeth, scope: 'host', replace: true },
  ]);
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parsePtpConf(args.conf);
  requireNetns(args);
  const host = args.dataplane.at(args.hostNetns);
  const pod = args.dataplane.at(args.netns);
  const hostVeth = randomVethName();
  const hostMac = randomMac();
  const podMac = randomMac();
  const undo: Array<() => Promise<unknown>> = [];
  const alias = vethAlias(args.conf.name, args.containerID, args.ifName);
  try {
    const veth: NetOp[] = [
      { op: 'veth-add', name: hostVeth, peer: args.ifName, peerNetns: args.netns, mtu: conf.mtu, mac: hostMac, peerMac: podMac },
      { op: 'link-set', name: hostVeth, alias, up: true },
    ];
    const [linkOutcome, ipamOutcome] = await Promise.allSettled([host.apply(veth), delegate('ADD', args)]);
    if (linkOutcome.status === 'fulfilled') undo.push(() => host.apply([{ op: 'link-del', name: hostVeth }]));
    if (ipamOutcome.status === 'fulfilled') undo.push(() => delegate('DEL', args));
    if (linkOutcome.status === 'rejected') {
      // Our half-made veth (its alias names it) goes; a name taken by someone else stays.
      const made = await host.link(hostVeth).catch(() => undefined);
      if (made?.ifalias === alias) await host.apply([{ op: 'link-del', name: hostVeth }]).catch(() => undefined);
      if (await pod.link(args.ifName).catch(() => undefined)) throw new CniError(ErrorCode.Internal, `container interface ${JSON.stringify(args.ifName)} already exists in ${args.netns}`);
      throw withContext('failed to create the veth pair', linkOutcome.reason);
    }
    if (ipamOutcome.status === 'rejected') throw withContext('IPAM ADD failed', ipamOutcome.reason);
    injectFault(args, 'after-ipam');

    const ipam = ipamOutcome.value!;
    const checked = checkIpamResult(ipam);
    const missing = checked.ips.find((ip) => !ip.gateway);
    if (missing) throw new CniError(ErrorCode.Internal, `IPAM plugin returned no gateway for ${missing.address}: ptp makes the gateway the host's end of the pair`);
    const ips = checked.ips.map((ip) => ({ ...ip, interface: 1 }));
    const families = familiesOf(ips.map((ip) => ip.address));
    if (conf.ipMasq) undo.push(() => teardownMasq(host, args.conf.name, args.containerID, families));

    const podThenHost = async (): Promise<void> => {
      try {
        const ops = ptpPodOps(args.ifName, ips, checked.routes);
        if (families.includes(6)) {
          // An IPv6 address is no route's source until it has settled (not tentative), as the reference's ConfigureIface waits.
          const split = ops.findIndex((o) => o.op === 'route-del');
          await pod.apply(ops.slice(0, split), { sysctls: { [`net/ipv6/conf/${args.ifName}/accept_dad`]: '0' } });
          await settleAddresses(pod, args.ifName);
          await pod.apply(ops.slice(split));
        } else await pod.apply(ops);
      } catch (e) {
        throw withContext(`failed to configure ${args.ifName} in ${args.netns}`, e);
      }
      try {
        const forwarding = { ...(families.includes(4) ? { 'net/ipv4/ip_forward': '1' } : {}), ...(families.includes(6) ? { 'net/ipv6/conf/all/forwarding': '1' } : {}) };
        await host.apply(ptpHostOps(hostVeth, ips), { sysctls: forwarding });
      } catch (e) {
        throw withContext(`failed to configure the host end ${hostVeth}`, e);
      }
    };
    await Promise.all([
      podThenHost(),
      conf.ipMasq ? setupMasq(host, args.conf.name, args.containerID, ips.map((ip) => ip.address)).catch((e) => { throw withContext('failed to set up IP masquerade', e); }) : undefined,
    ]);

    const interfaces: Interface[] = [
      { name: hostVeth, mac: hostMac },
      { name: args.ifName, mac: podMac, sandbox: args.netns },
    ];
    // The network's own DNS settings win over IPAM's only when given (as the reference).
    const dnsSet = Boolean(args.conf.dns && Object.keys(args.conf.dns).length);
    return { cniVersion: args.conf.cniVersion, interfaces, ips, routes: checked.routes, dns: dnsSet ? args.conf.dns! : (ipam.dns ?? {}) };
  } catch (e) {
    for (const step of undo.reverse()) {
      await step().catch((u) => args.log(`rollback step failed: ${asCniError(u).message}`));
    }
    throw e;
  }
}

/** Waits (up to 5 s) until no address of `dev` is tentative. */
async function settleAddresses(netns: Netns, dev: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const link = await netns.link(dev);
    if (!(link?.addr_info ?? []).some((a) => (a as { tentative?: boolean }).tentative)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new CniError(ErrorCode.Internal, `the addresses of ${dev} did not settle in 5 s (still tentative)`);
}

async function del(args: CmdArgs): Promise<void> {
  await delVethAttachment(args, parsePtpConf(args.conf).ipMasq);
}

async function check(args: CmdArgs): Promise<void> {
  parsePtpConf(args.conf);
  await checkVethAttachment(args);
}

/** Removes what attachments no longer valid left behind: IPs (via IPAM), host ends of pairs (any link of the host), masquerade chains. */
async function gc(args: CmdArgs): Promise<void> {
  await gcVethAttachments(args, parsePtpConf(args.conf).ipMasq, (host) => host.links());
}

async function status(args: CmdArgs): Promise<void> {
  parsePtpConf(args.conf);
  await delegate('STATUS', args);
}

export const ptp: PluginFuncs = { add, del, check, gc, status };
