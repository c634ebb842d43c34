// Which IPVS virtual and real servers carry one Service (pure over `ipvsadm-save -n`): its
// ClusterIP and external IPs on each port, and a NodePort on every node address.

import type { Service } from '../../api/types.ts';

/** The `-A`/`-a` lines of a save that carry `svc`. */
export function ipvsServiceLines(save: string, svc: Service): string[] {
  const s = svc.spec;
  const addrs = [s.clusterIP, ...(s.externalIPs ?? [])].filter(Boolean).flatMap((ip) => (s.ports ?? []).map((p) => `${ip}:${p.port}`));
  const nodePorts = (s.ports ?? []).filter((p) => p.nodePort).map((p) => `:${p.nodePort}`);
  const ours = (l: string) => addrs.some((a) => l.includes(` ${a} `) || l.endsWith(` ${a}`)) || nodePorts.some((n) => new RegExp(`^-[Aa] -[tu] [\\d.]+${n}( |$)`).test(l));
  return save.split('\n').filter((l) => l && ours(l));
}
