// kubewire's nftables mode, designed for scale (pure): one table whose lookups are maps, so
// a new connection costs a few hash lookups whatever the number of Services, and a change
// to one Service is a few map elements.
//
// A Service port with no special needs (no session affinity, no Local traffic policy) has
// no chain of its own: `service-ips` sends its VIP to the chain of its endpoint count N,
// `group-N`, which DNATs through `backends-N`, a map keyed by (VIP . protocol . port .
// numgen random mod N). Services with affinity or a Local policy, and every NodePort and
// external IP, get a chain per Service (as upstream's nftables mode has), with endpoint
// chains only where affinity needs them. Hairpin traffic is found by a set of
// (endpoint . endpoint) pairs instead of a rule per endpoint.

import { createHash } from 'node:crypto';
import { base32 } from '../iptables/names.ts';
import { endpointString, servicePortName, type ProxyEndpoint, type ServicePortInfo } from '../model.ts';

export const TABLE = 'kubewire';

export interface NftConfig {
  clusterCIDR: string;
  nodePodCIDR?: string;
  masqueradeBit?: number;
}

/** Upstream's naming: prefix, 8 characters of base32(sha256(name)), the readable name. */
export function chainName(prefix: string, name: string): string {
  const hash = base32(createHash('sha256').update(name).digest()).slice(0, 8);
  return `${prefix}-${hash}-${name}`.slice(0, 240);
}

/** "ns/svc/tcp/port" as upstream names Service chains (the port's name, or its number). */
function svcId(sp: ServicePortInfo): string {
  return `${sp.namespace}/${sp.name}/${sp.protocol}/${sp.portName || sp.port}`;
}

const key = (ip: string, sp: ServicePortInfo, port = sp.port) => `${ip} . ${sp.protocol} . ${port}`;
const quote = (name: string) => name; // nft identifiers may hold "/" and "." unquoted (quoted ones are refused here)

export function isSimple(sp: ServicePortInfo): boolean {
  return sp.affinitySeconds === undefined && !sp.internalLocal && !sp.externalLocal;
}

export interface NftRuleset {
  script: string;
  /** Map elements and rules, for metrics. */
  counts: Record<string, number>;
}

/** The whole table, as one `nft -f` transaction that replaces the previous one. */
export function buildNftables(ports: ServicePortInfo[], cfg: NftConfig): NftRuleset {
  const mark = `0x${(1 << (cfg.masqueradeBit ?? 14)).toString(16).padStart(8, '0')}`;
  const serviceIPs: string[] = [];
  const nodePorts: string[] = [];
  const noEndpointServices: string[] = [];
  const noEndpointNodePorts: string[] = [];
  const hairpin = new Set<string>();
  const backends = new Map<number, string[]>();
  const chains: Array<{ name: string; rules: string[] }> = [];
  const sets: string[] = [];
  const notLoopback = `ip daddr != 127.0.0.0/8`;

  // A port mapping needs a transport protocol match before it.
  const dnatMap = (proto: string, eps: ProxyEndpoint[]) =>
    eps.length === 1
      ? `meta l4proto ${proto} dnat ip to ${endpointString(eps[0]!)}`
      : `meta l4proto ${proto} dnat ip to numgen random mod ${eps.length} map { ${eps.map((e, i) => `${i} : ${e.ip} . ${e.port}`).join(', ')} }`;

  for (const sp of ports) {
    const ready = sp.endpoints.filter((e) => e.ready);
    const local = ready.filter((e) => e.local);
    for (const e of ready) hairpin.add(`${e.ip} . ${e.ip}`);
    const id = svcId(sp);
    const hasExternal = sp.nodePort !== undefined || sp.externalIPs.length > 0;
    const externalTargets = (verdict: string) => {
      for (const ip of sp.externalIPs) serviceIPs.push(`${key(ip, sp)} : ${verdict}`);
      if (sp.nodePort) nodePorts.push(`${sp.protocol} . ${sp.nodePort} : ${verdict}`);
    };
    const noEndpoints = (verdict: string, cluster: boolean, external: boolean) => {
      if (cluster && sp.clusterIP) noEndpointServices.push(`${key(sp.clusterIP, sp)} : ${verdict}`);
      if (external) {
        for (const ip of sp.externalIPs) noEndpointServices.push(`${key(ip, sp)} : ${verdict}`);
        if (sp.nodePort) noEndpointNodePorts.push(`${sp.protocol} . ${sp.nodePort} : ${verdict}`);
      }
    };

    if (!ready.length) {
      noEndpoints('goto reject-chain', true, true);
      continue;
    }

    if (isSimple(sp)) {
      // Cluster traffic: the group of its endpoint count, no chain of its own.
      const n = ready.length;
      if (sp.clusterIP) {
        serviceIPs.push(`${key(sp.clusterIP, sp)} : goto group-${n}`);
        const list = backends.get(n) ?? [];
        ready.forEach((e, i) => list.push(`${key(sp.clusterIP!, sp)} . ${i} : ${e.ip} . ${e.port}`));
        backends.set(n, list);
      }
      if (hasExternal) {
        const ext = chainName('external', id);
        chains.push({ name: ext, rules: [`jump mark-for-masquerade`, dnatMap(sp.protocol, ready)] });
        externalTargets(`goto ${quote(ext)}`);
      }
      continue;
    }

    // A chain per Service: affinity and Local policies need it.
    const svc = chainName('service', id);
    const loc = chainName('local', id);
    const balance = (eps: ProxyEndpoint[], masq: boolean): string[] => {
      const rules = masq ? [`ip saddr != ${cfg.clusterCIDR} jump mark-for-masquerade`] : [];
      if (sp.affinitySeconds === undefined) return [...rules, dnatMap(sp.protocol, eps)];
      const epChains = eps.map((e) => chainName('endpoint', `${id}__${e.ip}/${e.port}`));
      eps.forEach((e, i) => {
        const aff = chainName('affinity', `${id}__${e.ip}/${e.port}`);
        if (!sets.some((s) => s.includes(quote(aff)))) {
          sets.push(`  set ${quote(aff)} {\n    type ipv4_addr\n    flags dynamic,timeout\n    timeout ${sp.affinitySeconds}s\n  }`);
          chains.push({ name: epChains[i]!, rules: [`update @${quote(aff)} { ip saddr }`, `meta l4proto ${sp.protocol} dnat ip to ${endpointString(e)}`] });
        }
        rules.push(`ip saddr @${quote(aff)} goto ${quote(epChains[i]!)}`);
      });
      rules.push(`numgen random mod ${eps.length} vmap { ${epChains.map((c, i) => `${i} : goto ${quote(c)}`).join(', ')} }`);
      return rules;
    };
    chains.push({ name: svc, rules: balance(ready, true) });
    if (local.length) chains.push({ name: loc, rules: balance(local, false) });

    if (sp.clusterIP) {
      if (!sp.internalLocal) serviceIPs.push(`${key(sp.clusterIP, sp)} : goto ${quote(svc)}`);
      else if (local.length) serviceIPs.push(`${key(sp.clusterIP, sp)} : goto ${quote(loc)}`);
      else noEndpoints('drop', true, false);
    }
    if (hasExternal) {
      const ext = chainName('external', id);
      if (!sp.externalLocal) chains.push({ name: ext, rules: ['jump mark-for-masquerade', `goto ${quote(svc)}`] });
      else {
        // Pods and the node itself may use any endpoint; outside clients only local ones, their address kept.
        const rules = [...(cfg.nodePodCIDR ? [`ip saddr ${cfg.nodePodCIDR} goto ${quote(svc)}`] : []), 'fib saddr type local jump mark-for-masquerade', `fib saddr type local goto ${quote(svc)}`];
        if (local.length) rules.push(`goto ${quote(loc)}`);
        else noEndpoints('drop', false, true);
        chains.push({ name: ext, rules });
      }
      externalTargets(`goto ${quote(ext)}`);
    }
  }

  const map = (name: string, type: string, comment: string, elements: string[]) =>
    `  map ${name} {\n    ${type}\n    comment "${comment}"\n${elements.length ? `    elements = { ${elements.join(',\n      ')} }\n` : ''}  }`;
  const groups = [...backends.keys()].sort((a, b) => a - b);
  const lines = [
    `add table ip ${TABLE}`,
    `delete table ip ${TABLE}`,
    `table ip ${TABLE} {`,
    `  comment "rules for kubewire's service proxy"`,
    map('service-ips', 'type ipv4_addr . inet_proto . inet_service : verdict', 'ClusterIP and external IP traffic', serviceIPs),
    map('service-nodeports', 'type inet_proto . inet_service : verdict', 'NodePort traffic', nodePorts),
    map('no-endpoint-services', 'type ipv4_addr . inet_proto . inet_service : verdict', 'vmap to drop or reject packets to services with no endpoints', noEndpointServices),
    map('no-endpoint-nodeports', 'type inet_proto . inet_service : verdict', 'vmap to drop or reject packets to service nodeports with no endpoints', noEndpointNodePorts),
    ...groups.map((n) => map(`backends-${n}`, `typeof ip daddr . meta l4proto . th dport . numgen random mod ${n} : ip daddr . th dport`, `endpoints of the Services with ${n} endpoint${n === 1 ? '' : 's'}`, backends.get(n)!)),
    `  set hairpin {\n    type ipv4_addr . ipv4_addr\n    comment "endpoint . endpoint: a pod reaching itself through a Service"\n${hairpin.size ? `    elements = { ${[...hairpin].join(',\n      ')} }\n` : ''}  }`,
    ...sets,
    `  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }`,
    `  chain nat-output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }`,
    `  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    jump masquerading\n  }`,
    `  chain filter-input {\n    type filter hook input priority filter; policy accept;\n    ct state new jump service-endpoints-check\n  }`,
    `  chain filter-forward {\n    type filter hook forward priority filter; policy accept;\n    ct state new jump service-endpoints-check\n  }`,
    `  chain filter-output {\n    type filter hook output priority filter; policy accept;\n    ct state new jump service-endpoints-check\n  }`,
    `  chain services {\n    ip daddr . meta l4proto . th dport vmap @service-ips\n    ${notLoopback} fib daddr type local meta l4proto . th dport vmap @service-nodeports\n  }`,
    `  chain service-endpoints-check {\n    ip daddr . meta l4proto . th dport vmap @no-endpoint-services\n    ${notLoopback} fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports\n  }`,
    `  chain masquerading {\n    ct status dnat ip saddr . ip daddr @hairpin masquerade\n    meta mark & ${mark} == 0 return\n    meta mark set meta mark ^ ${mark}\n    masquerade fully-random\n  }`,
    `  chain mark-for-masquerade {\n    meta mark set meta mark | ${mark}\n  }`,
    `  chain reject-chain {\n    reject\n  }`,
    ...groups.map((n) => `  chain group-${n} {\n    ip saddr != ${cfg.clusterCIDR} jump mark-for-masquerade\n    dnat ip to ip daddr . meta l4proto . th dport . numgen random mod ${n} map @backends-${n}\n  }`),
    ...chains.map((c) => `  chain ${quote(c.name)} {\n${c.rules.map((r) => `    ${r}`).join('\n')}\n  }`),
    '}',
    '',
  ];
  const backendElements = groups.reduce((n, g) => n + backends.get(g)!.length, 0);
  return {
    script: lines.join('\n'),
    counts: { 'service-ips': serviceIPs.length, backends: backendElements, hairpin: hairpin.size, chains: chains.length + groups.length, 'no-endpoint': noEndpointServices.length + noEndpointNodePorts.length },
  };
}
