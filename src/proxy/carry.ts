// "Which rules carry this Service on this node?", asked of whichever proxy mode programs it:
// each backend answers in its own words (iptables rules, nftables map elements and chains, IPVS
// virtual servers). `kubewire describe service` and the page's details both print this answer,
// so they always name the same rules.

import type { Service } from '../api/types.ts';
import type { IptablesBackend, Netns } from '../dataplane/port.ts';
import { iptablesServiceRules } from './iptables/carry.ts';
import { ipvsServiceLines } from './ipvs/carry.ts';
import { nftServiceLines } from './nftables/carry.ts';
import { TABLE } from './nftables/rules.ts';

export type ProxyMode = 'iptables' | 'nftables' | 'ipvs';

export interface Carriers {
  mode: ProxyMode;
  /** What the lines are, in the mode's terms ("table ip kubewire", "ipvsadm-save"...). */
  source: string;
  lines: string[];
}

/** The rules, elements or virtual servers that carry `svc` in the node's namespace (none for a headless Service). */
export async function serviceCarriers(netns: Netns, mode: ProxyMode, svc: Service, iptablesBackend?: IptablesBackend): Promise<Carriers> {
  const headless = !svc.spec.clusterIP || svc.spec.clusterIP === 'None';
  if (mode === 'nftables') {
    const listing = headless ? '' : ((await netns.nftTable(TABLE).catch(() => undefined)) ?? '');
    return { mode, source: `table ip ${TABLE}`, lines: nftServiceLines(listing, svc) };
  }
  if (mode === 'ipvs') {
    const save = headless ? '' : await netns.ipvsSave().catch(() => '');
    return { mode, source: 'ipvsadm-save', lines: ipvsServiceLines(save, svc) };
  }
  const tables = headless ? [] : await netns.iptablesRules(['filter', 'nat'], 4, iptablesBackend).catch(() => []);
  return { mode, source: 'iptables', lines: iptablesServiceRules(tables, svc) };
}

/** The heading `describe service` and the page print above the lines: which node, which mode, what was read. */
export function carriersHeading(c: Carriers, node: string): string {
  if (c.mode === 'nftables') return `nftables on ${node} (table ip ${TABLE}; every node holds the same)`;
  if (c.mode === 'ipvs') return `IPVS on ${node} (ipvsadm-save; every node holds the same, its own address for NodePorts)`;
  return `Rules on ${node} (iptables; every node holds the same)`;
}
