// NetOps as iproute2 batch lines (pure): what the Linux dataplane sends to `ip -batch`, and
// for FDB entries to `bridge -batch` (iproute2's other tool).

import type { NetOp } from '../port.ts';

const mtuOf = (mtu?: number) => (mtu ? ` mtu ${mtu}` : '');
const macOf = (mac?: string) => (mac ? ` address ${mac}` : '');

/** Which tool takes the op's lines. */
export type Tool = 'ip' | 'bridge' | 'ethtool';

export function toolOf(op: NetOp): Tool {
  return op.op === 'fdb-replace' || op.op === 'fdb-del' ? 'bridge' : op.op === 'offload' ? 'ethtool' : 'ip';
}

/** Consecutive ops of one tool, in order: each run is one batch. */
export function batches(ops: NetOp[]): Array<{ tool: Tool; lines: string[] }> {
  const out: Array<{ tool: Tool; lines: string[] }> = [];
  for (const op of ops) {
    const tool = toolOf(op);
    const last = out[out.length - 1];
    if (last?.tool === tool) last.lines.push(...ipLines(op));
    else out.push({ tool, lines: ipLines(op) });
  }
  return out;
}

/** The batch lines for one change (a link change may take more than one: ip sets the bridge port's options apart); for ethtool, its arguments. */
export function ipLines(op: NetOp): string[] {
  switch (op.op) {
    case 'link-add':
      return [`link add name ${op.name}${mtuOf(op.mtu)}${macOf(op.mac)} type ${op.kind}`];
    case 'vxlan-add':
      return [`link add name ${op.name}${mtuOf(op.mtu)}${macOf(op.mac)} type vxlan id ${op.id} local ${op.local} dev ${op.dev} dstport ${op.port}${op.learning ? '' : ' nolearning'} noudpcsum`];
    case 'veth-add':
      return [`link add name ${op.name}${mtuOf(op.mtu)}${macOf(op.mac)} type veth peer name ${op.peer}${mtuOf(op.mtu)}${macOf(op.peerMac)}${op.peerNetns ? ` netns ${op.peerNetns}` : ''}`];
    case 'link-set': {
      const lines: string[] = [];
      const attrs = `${op.master !== undefined ? ` master ${op.master}` : ''}${op.alias !== undefined ? ` alias "${op.alias}"` : ''}${op.promisc !== undefined ? ` promisc ${op.promisc ? 'on' : 'off'}` : ''}`;
      if (attrs) lines.push(`link set dev ${op.name}${attrs}`);
      if (op.hairpin !== undefined) lines.push(`link set dev ${op.name} type bridge_slave hairpin ${op.hairpin ? 'on' : 'off'}`);
      if (op.proxyArp !== undefined) lines.push(`link set dev ${op.name} type bridge_slave proxy_arp ${op.proxyArp ? 'on' : 'off'}`);
      if (op.learning !== undefined) lines.push(`link set dev ${op.name} type bridge_slave learning ${op.learning ? 'on' : 'off'}`);
      if (op.up !== undefined) lines.push(`link set dev ${op.name} ${op.up ? 'up' : 'down'}`);
      return lines;
    }
    case 'link-del':
      return [`link del dev ${op.name}`];
    case 'addr-add':
      return [`addr ${op.replace ? 'replace' : 'add'} ${op.address} dev ${op.dev}`];
    case 'addr-del':
      return [`addr del ${op.address} dev ${op.dev}`];
    case 'route-add':
      return [`route ${op.replace ? 'replace' : 'add'} ${op.dst}${op.via ? ` via ${op.via}` : ''}${op.dev ? ` dev ${op.dev}` : ''}${op.onlink ? ' onlink' : ''}${op.scope ? ` scope ${op.scope}` : ''}${op.src ? ` src ${op.src}` : ''}`];
    case 'route-del':
      return [`route del ${op.dst}${op.dev ? ` dev ${op.dev}` : ''}`];
    case 'neigh-replace':
      return [`neigh replace ${op.ip} lladdr ${op.mac} dev ${op.dev}`];
    case 'neigh-del':
      return [`neigh del ${op.ip} dev ${op.dev}`];
    case 'fdb-replace':
      return [op.dst ? `fdb replace ${op.mac} dev ${op.dev} dst ${op.dst} self permanent` : `fdb replace ${op.mac} dev ${op.dev} master static`];
    case 'fdb-del':
      return [op.dst ? `fdb del ${op.mac} dev ${op.dev} dst ${op.dst} self` : `fdb del ${op.mac} dev ${op.dev} master`];
    case 'offload':
      return [`-K ${op.dev} gro ${op.gro ? 'on' : 'off'}`];
  }
}
