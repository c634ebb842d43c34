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

/** A map or set: its declaration (type, flags, comment) and its elements (key -> value; value '' for a set). */
export interface NftCollection {
  kind: 'map' | 'set';
  spec: string[];
  elements: Map<string, string>;
}

/** The table as data, so that two versions can be compared element by element. */
export interface NftTable {
  collections: Map<string, NftCollection>;
  /** Chains with their rules; base chains carry their hook line first. */
  chains: Map<string, string[]>;
}

export interface NftRuleset {
  script: string;
  /** Map elements and rules, for metrics. */
  counts: Record<string, number>;
}

export function buildNftables(ports: ServicePortInfo[], cfg: NftConfig): NftRuleset {
  const table = buildTable(ports, cfg);
  return { script: renderFull(table), counts: countObjects(table) };
}

/** The table kubewire wants for these Service ports (pure). */
export function buildTable(ports: ServicePortInfo[], cfg: NftConfig): NftTable {
  const mark = `0x${(1 << (cfg.masqueradeBit ?? 14)).toString(16).padStart(8, '0')}`;
  const serviceIPs: string[] = [];
  const nodePorts: string[] = [];
  const noEndpointServices: string[] = [];
  const noEndpointNodePorts: string[] = [];
  const hairpin = new Set<string>();
  const backends = new Map<number, string[]>();
  const chains: Array<{ name: string; rules: string[] }> = [];
  const affinitySets = new Map<string, number>();
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
        if (!affinitySets.has(aff)) {
          affinitySets.set(aff, sp.affinitySeconds!);
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

  const collections = new Map<string, NftCollection>();
  const addMap = (name: string, type: string, comment: string, elements: string[]) => {
    const m = new Map<string, string>();
    for (const e of elements) {
      const i = e.indexOf(' : ');
      m.set(e.slice(0, i), e.slice(i + 3));
    }
    collections.set(name, { kind: 'map', spec: [type, `comment "${comment}"`], elements: m });
  };
  addMap('service-ips', 'type ipv4_addr . inet_proto . inet_service : verdict', 'ClusterIP and external IP traffic', serviceIPs);
  addMap('service-nodeports', 'type inet_proto . inet_service : verdict', 'NodePort traffic', nodePorts);
  addMap('no-endpoint-services', 'type ipv4_addr . inet_proto . inet_service : verdict', 'vmap to drop or reject packets to services with no endpoints', noEndpointServices);
  addMap('no-endpoint-nodeports', 'type inet_proto . inet_service : verdict', 'vmap to drop or reject packets to service nodeports with no endpoints', noEndpointNodePorts);
  const groups = [...backends.keys()].sort((a, b) => a - b);
  for (const n of groups) addMap(`backends-${n}`, `typeof ip daddr . meta l4proto . th dport . numgen random mod ${n} : ip daddr . th dport`, `endpoints of the Services with ${n} endpoint${n === 1 ? '' : 's'}`, backends.get(n)!);
  collections.set('hairpin', { kind: 'set', spec: ['type ipv4_addr . ipv4_addr', 'comment "endpoint . endpoint: a pod reaching itself through a Service"'], elements: new Map([...hairpin].map((e) => [e, ''])) });
  for (const [name, seconds] of affinitySets) collections.set(name, { kind: 'set', spec: ['type ipv4_addr', 'flags dynamic,timeout', `timeout ${seconds}s`], elements: new Map() });

  const all = new Map<string, string[]>([
    ['nat-prerouting', ['type nat hook prerouting priority dstnat; policy accept;', 'jump services']],
    ['nat-output', ['type nat hook output priority -100; policy accept;', 'jump services']],
    ['nat-postrouting', ['type nat hook postrouting priority srcnat; policy accept;', 'jump masquerading']],
    ['filter-input', ['type filter hook input priority filter; policy accept;', 'ct state new jump service-endpoints-check']],
    ['filter-forward', ['type filter hook forward priority filter; policy accept;', 'ct state new jump service-endpoints-check']],
    ['filter-output', ['type filter hook output priority filter; policy accept;', 'ct state new jump service-endpoints-check']],
    ['services', ['ip daddr . meta l4proto . th dport vmap @service-ips', `${notLoopback} fib daddr type local meta l4proto . th dport vmap @service-nodeports`]],
    ['service-endpoints-check', ['ip daddr . meta l4proto . th dport vmap @no-endpoint-services', `${notLoopback} fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports`]],
    ['masquerading', ['ct status dnat ip saddr . ip daddr @hairpin masquerade', `meta mark & ${mark} == 0 return`, `meta mark set meta mark ^ ${mark}`, 'masquerade fully-random']],
    ['mark-for-masquerade', [`meta mark set meta mark | ${mark}`]],
    ['reject-chain', ['reject']],
  ]);
  for (const n of groups) all.set(`group-${n}`, [`ip saddr != ${cfg.clusterCIDR} jump mark-for-masquerade`, `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod ${n} map @backends-${n}`]);
  for (const c of chains) all.set(c.name, c.rules);
  return { collections, chains: all };
}

const BASE_CHAIN = /^type \w+ hook /;

function collectionBlock(name: string, c: NftCollection): string {
  const elements = [...c.elements].map(([k, v]) => (c.kind === 'map' ? `${k} : ${v}` : k));
  return `  ${c.kind} ${name} {\n${c.spec.map((l) => `    ${l}\n`).join('')}${elements.length ? `    elements = { ${elements.join(',\n      ')} }\n` : ''}  }`;
}

/** The whole table, as one `nft -f` transaction that replaces the previous one. */
export function renderFull(t: NftTable): string {
  return [
    `add table ip ${TABLE}`,
    `delete table ip ${TABLE}`,
    `table ip ${TABLE} {`,
    `  comment "rules for kubewire's service proxy"`,
    ...[...t.collections].map(([name, c]) => collectionBlock(name, c)),
    ...[...t.chains].map(([name, rules]) => `  chain ${name} {\n${rules.map((r) => `    ${r}`).join('\n')}\n  }`),
    '}',
    '',
  ].join('\n');
}

/**
 * Only what changed, as one `nft -f` transaction: new maps, sets and chains first, changed
 * chains flushed and refilled, elements deleted and added, then what nothing refers to any
 * more deleted. A one-Service change is a handful of lines whatever the table's size.
 */
export function renderDiff(prev: NftTable, next: NftTable): string {
  const t = `ip ${TABLE}`;
  const out: string[] = [];
  for (const [name, c] of next.collections) if (!prev.collections.has(name)) out.push(`add ${c.kind} ${t} ${name} { ${c.spec.join('; ')}; }`);
  for (const name of next.chains.keys()) if (!prev.chains.has(name)) out.push(`add chain ${t} ${name}`);
  for (const [name, rules] of next.chains) {
    const old = prev.chains.get(name);
    if (old && JSON.stringify(old) === JSON.stringify(rules)) continue;
    if (BASE_CHAIN.test(rules[0] ?? '')) continue; // base chains never change
    if (old) out.push(`flush chain ${t} ${name}`);
    for (const r of rules) out.push(`add rule ${t} ${name} ${r}`);
  }
  for (const [name, c] of next.collections) {
    const old = prev.collections.get(name)?.elements ?? new Map<string, string>();
    const gone = [...old].filter(([k, v]) => c.elements.get(k) !== v).map(([k]) => k);
    const added = [...c.elements].filter(([k, v]) => old.get(k) !== v).map(([k, v]) => (c.kind === 'map' ? `${k} : ${v}` : k));
    if (gone.length && prev.collections.has(name)) out.push(`delete element ${t} ${name} { ${gone.join(', ')} }`);
    if (added.length) out.push(`add element ${t} ${name} { ${added.join(', ')} }`);
  }
  // Elements and rules that referred to these are gone by now, earlier in the same transaction.
  // Chains that go: all emptied first (they may jump to each other), then deleted.
  const goneChains = [...prev.chains.keys()].filter((name) => !next.chains.has(name));
  for (const name of goneChains) out.push(`flush chain ${t} ${name}`);
  for (const name of goneChains) out.push(`delete chain ${t} ${name}`);
  for (const [name, c] of prev.collections) if (!next.collections.has(name)) out.push(`delete ${c.kind} ${t} ${name}`);
  return out.length ? `${out.join('\n')}\n` : '';
}

export function countObjects(t: NftTable): Record<string, number> {
  const size = (name: string) => t.collections.get(name)?.elements.size ?? 0;
  const backends = [...t.collections].filter(([n]) => n.startsWith('backends-')).reduce((n, [, c]) => n + c.elements.size, 0);
  return { 'service-ips': size('service-ips'), backends, hairpin: size('hairpin'), chains: t.chains.size, 'no-endpoint': size('no-endpoint-services') + size('no-endpoint-nodeports') };
}
