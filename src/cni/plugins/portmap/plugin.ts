// The portmap plugin (chained after bridge): runtimeConfig.portMappings become hostPort
// DNAT rules with hairpin masquerade; DEL removes them, GC removes those of dead pods.

import { CniError, ErrorCode } from '../../spec/errors.ts';
import type { Result } from '../../spec/types.ts';
import type { CmdArgs, PluginFuncs } from '../../skel/skel.ts';
import { validAttachments } from '../../spec/attachments.ts';
import { parseSave, removalLines, transaction } from '../../../dataplane/iptables-text.ts';
import { withLock, type IptablesBackend } from '../../../dataplane/port.ts';
import { tryParseIP } from '../../../netaddr/ip.ts';
import { containerLines, dnatChainName, portmapOwners, sharedLines, type PortMapping, type PortmapTarget } from './rules.ts';

/** Serialises read-modify-write of the shared chains between concurrent portmap calls. */
const LOCK_FILE = '/run/kubewire/cni-portmap.lock';

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

export function parseMappings(raw: unknown): PortMapping[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw invalid('runtimeConfig.portMappings must be a list');
  return raw.map((m, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    const port = (v: unknown, field: string): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw invalid(`${where}.${field} must be a port number (1-65535), not ${JSON.stringify(v)}`);
      return v;
    };
    const protocol = String(m?.protocol ?? 'tcp').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') throw invalid(`${where}.protocol ${JSON.stringify(m?.protocol)} is not tcp, udp or sctp`);
    const hostIP = m?.hostIP;
    if (hostIP !== undefined && hostIP !== '' && (typeof hostIP !== 'string' || !tryParseIP(hostIP))) throw invalid(`${where}.hostIP ${JSON.stringify(hostIP)} is not an IP address`);
    return { hostPort: port(m?.hostPort, 'hostPort'), containerPort: port(m?.containerPort, 'containerPort'), protocol, ...(hostIP ? { hostIP } : {}) };
  });
}

function targetOf(args: CmdArgs): PortmapTarget | undefined {
  const mappings = parseMappings(args.conf.runtimeConfig?.portMappings).filter((m) => !m.hostIP || !m.hostIP.includes(':'));
  const markMasqBit = args.conf.markMasqBit ?? 13;
  if (typeof markMasqBit !== 'number' || !Number.isInteger(markMasqBit) || markMasqBit < 0 || markMasqBit > 31) throw invalid('field "markMasqBit" must be an integer between 0 and 31');
  const snat = args.conf.snat ?? true;
  if (typeof snat !== 'boolean') throw invalid('field "snat" must be true or false');
  if (!mappings.length) return undefined;
  const prev = args.conf.prevResult;
  if (!prev) throw invalid('portmap must be chained after a plugin that sets up the interface: prevResult is missing');
  const sandboxed = new Set((prev.interfaces ?? []).flatMap((iface, i) => (iface.sandbox ? [i] : [])));
  const podAddress = prev.ips?.find((ip) => !ip.address.includes(':') && (ip.interface === undefined || sandboxed.has(ip.interface)))?.address;
  if (!podAddress) throw invalid('prevResult has no IPv4 address of the container to map ports to');
  return { network: args.conf.name, containerID: args.containerID, podAddress, mappings, markMasqBit, snat };
}

async function removeChains(args: CmdArgs, backend: IptablesBackend | undefined, chainsOf: (dump: ReturnType<typeof parseSave>) => string[]): Promise<void> {
  const host = args.dataplane.at(args.hostNetns);
  await withLock(args.dataplane, LOCK_FILE, async () => {
    const dump = parseSave(await host.iptablesSave('nat', 4, backend));
    const lines = removalLines(dump, chainsOf(dump));
    if (lines.length) await host.iptablesRestore(transaction('nat', lines), 4, backend);
  });
}

/** kubewire's extension of portmap's configuration: which iptables (legacy or nft) the host's other rules use. */
function backendOf(conf: object): IptablesBackend | undefined {
  const b = (conf as { iptablesBackend?: unknown }).iptablesBackend;
  if (b === undefined) return undefined;
  if (b !== 'legacy' && b !== 'nft') throw invalid(`iptablesBackend ${JSON.stringify(b)}: must be "legacy" or "nft"`);
  return b;
}

export const portmap: PluginFuncs = {
  async add(args: CmdArgs): Promise<Result> {
    const target = targetOf(args);
    const prev = args.conf.prevResult;
    if (!prev) throw invalid('portmap must be chained after a plugin that sets up the interface: prevResult is missing');
    if (!target) return prev;
    const host = args.dataplane.at(args.hostNetns);
    await withLock(args.dataplane, LOCK_FILE, async () => {
      const backend = backendOf(args.conf);
      const dump = parseSave(await host.iptablesSave('nat', 4, backend));
      await host.iptablesRestore(transaction('nat', [...sharedLines(dump, target.markMasqBit), ...containerLines(target)]), 4, backend);
    });
    // DNAT of 127.0.0.1 to the pod needs route_localnet on the interface towards it.
    const hostIf = prev.interfaces?.find((i) => !i.sandbox)?.name;
    if (hostIf) await host.setSysctls({ [`net/ipv4/conf/${hostIf}/route_localnet`]: '1' });
    // Stale UDP conntrack entries would keep sending to the previous pod on this hostPort.
    for (const m of target.mappings.filter((x) => x.protocol === 'udp')) {
      await host.conntrackDelete({ protocol: 'udp', origDstPort: m.hostPort }).catch(() => undefined);
    }
    return prev;
  },

  async del(args: CmdArgs): Promise<void> {
    // Best effort whatever the mappings say: the chain is found by the attachment's name.
    await removeChains(args, backendOf(args.conf), () => [dnatChainName(args.conf.name, args.containerID)]);
  },

  async check(args: CmdArgs): Promise<void> {
    const target = targetOf(args);
    if (!target) return;
    const dump = parseSave(await args.dataplane.at(args.hostNetns).iptablesSave('nat', 4, backendOf(args.conf)));
    const chain = dnatChainName(target.network, target.containerID);
    if (!dump.chains.has(chain)) throw new CniError(ErrorCode.Internal, `portmap chain ${chain} for ${target.containerID} is missing`);
    const podIP = target.podAddress.split('/')[0];
    for (const m of target.mappings) {
      const ok = dump.rules.some((r) => r.startsWith(`-A ${chain} `) && r.includes(`--dport ${m.hostPort} `) && r.includes(`--to-destination ${podIP}:${m.containerPort}`));
      if (!ok) throw new CniError(ErrorCode.Internal, `portmap rule for hostPort ${m.hostPort}/${m.protocol} -> ${podIP}:${m.containerPort} is missing`);
    }
  },

  async gc(args: CmdArgs): Promise<void> {
    const valid = new Set(validAttachments(args.conf).map((a) => a.containerID));
    await removeChains(args, backendOf(args.conf), (dump) => {
      const stale = [...portmapOwners(dump, args.conf.name)].filter(([, id]) => !valid.has(id));
      for (const [chain, id] of stale) args.log(`gc: removing port mappings ${chain} of ${id}`);
      return stale.map(([chain]) => chain);
    });
  },
};
