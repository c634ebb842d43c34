// Which of a node's iptables rules carry one Service (pure over what the kernel holds): its
// chains, named by hash as kube-proxy names them, the jumps into them, its endpoints' chains,
// and the rules that name it in their comments (REJECT/DROP when it has no endpoints).

import type { Service } from '../../api/types.ts';
import type { IptablesTableState } from '../../dataplane/port.ts';
import { externalChain, localChain, serviceChain } from './names.ts';

/** The rules ("-A CHAIN ...", filter's then nat's as read) that carry `svc`. */
export function iptablesServiceRules(tables: IptablesTableState[], svc: Service): string[] {
  const rules = tables.flatMap((t) => t.chains.flatMap((c) => c.rules));
  const chains = new Set<string>();
  const tags: string[] = [];
  for (const p of svc.spec.ports ?? []) {
    const name = `${svc.metadata.namespace}/${svc.metadata.name}${p.name ? `:${p.name}` : ''}`;
    const proto = (p.protocol ?? 'TCP').toLowerCase();
    tags.push(name);
    for (const c of [serviceChain(name, proto), localChain(name, proto), externalChain(name, proto)]) chains.add(c);
  }
  for (const r of rules) if (chains.has(r.chain) && r.target?.startsWith('KUBE-SEP-')) chains.add(r.target);
  const own = (l: string) => tags.some((t) => l.includes(`"${t} has no`) || l.includes(`"${t} cluster IP"`) || l.includes(`"${t} external IP"`));
  return rules.filter((r) => chains.has(r.chain) || chains.has(r.target ?? '') || own(r.text)).map((r) => r.text);
}
