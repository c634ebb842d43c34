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
import { endpointString } from '../../api/endpointslices.ts';
import { categorize, servicePortName, type ProxyEndpoint, type ServicePortInfo } from '../model.ts';

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
// Chain and set names go unquoted: nft accepts "/" and "." in identifiers (and refuses quoted ones
// in these places). They are built from validated DNS names, IPs and numbers only.

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

/** What one Service port puts in the table: map and set elements, chains, affinity sets, groups. */
export interface Contribution {
  elements: Array<[collection: string, key: string, value: string]>;
  chains: Array<[name: string, rules: string[]]>;
  affinitySets: Array<[name: string, seconds: number]>;
  /** The endpoint-count groups it joins (group-N chain, backends-N map). */
  groups: number[];
}

// A port mapping needs a transport protocol match before it.
const dnatMap = (proto: string, eps: ProxyEndpoint[]) =>
  eps.length === 1
    ? `meta l4proto ${proto} dnat ip to ${endpointString(eps[0]!)}`
    : `meta l4proto ${proto} dnat ip to numgen random mod ${eps.length} map { ${eps.map((e, i) => `${i} : ${e.ip} . ${e.port}`).join(', ')} }`;

/** One Service port's share of the table (pure). */
export function contribution(sp: ServicePortInfo, cfg: NftConfig): Contribution {
  const out: Contribution = { elements: [], chains: [], affinitySets: [], groups: [] };
  const el = (collection: string, k: string, v = '') => out.elements.push([collection, k, v]);
  const { cluster: ready, local } = categorize(sp);
  for (const e of ready) el('hairpin', `${e.ip} . ${e.ip}`);
  const id = svcId(sp);
  const hasExternal = sp.nodePort !== undefined || sp.externalIPs.length > 0;
  const externalTargets = (verdict: string) => {
    for (const ip of sp.externalIPs) el('service-ips', key(ip, sp), verdict);
    if (sp.nodePort) el('service-nodeports', `${sp.protocol} . ${sp.nodePort}`, verdict);
  };
  const noEndpoints = (verdict: string, cluster: boolean, external: boolean) => {
    if (cluster && sp.clusterIP) el('no-endpoint-services', key(sp.clusterIP, sp), verdict);
    if (external) {
      for (const ip of sp.externalIPs) el('no-endpoint-services', key(ip, sp), verdict);
      if (sp.nodePort) el('no-endpoint-nodeports', `${sp.protocol} . ${sp.nodePort}`, verdict);
    }
  };

  if (!ready.length) {
    noEndpoints('goto reject-chain', true, true);
    return out;
  }

  if (isSimple(sp)) {
    // Cluster traffic: the group of its endpoint count, no chain of its own.
    const n = ready.length;
    if (sp.clusterIP) {
      el('service-ips', key(sp.clusterIP, sp), `goto group-${n}`);
      out.groups.push(n);
      ready.forEach((e, i) => el(`backends-${n}`, `${key(sp.clusterIP!, sp)} . ${i}`, `${e.ip} . ${e.port}`));
    }
    if (hasExternal) {
      const ext = chainName('external', id);
      out.chains.push([ext, ['jump mark-for-masquerade', dnatMap(sp.protocol, ready)]]);
      externalTargets(`goto ${ext}`);
    }
    return out;
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
      if (!out.affinitySets.some(([n]) => n === aff)) {
        out.affinitySets.push([aff, sp.affinitySeconds!]);
        out.chains.push([epChains[i]!, [`update @${aff} { ip saddr }`, `meta l4proto ${sp.protocol} dnat ip to ${endpointString(e)}`]]);
      }
      rules.push(`ip saddr @${aff} goto ${epChains[i]!}`);
    });
    rules.push(`numgen random mod ${eps.length} vmap { ${epChains.map((c, i) => `${i} : goto ${c}`).join(', ')} }`);
    return rules;
  };
  out.chains.push([svc, balance(ready, true)]);
  if (local.length) out.chains.push([loc, balance(local, false)]);

  if (sp.clusterIP) {
    if (!sp.internalLocal) el('service-ips', key(sp.clusterIP, sp), `goto ${svc}`);
    else if (local.length) el('service-ips', key(sp.clusterIP, sp), `goto ${loc}`);
    else noEndpoints('drop', true, false);
  }
  if (hasExternal) {
    const ext = chainName('external', id);
    if (!sp.externalLocal) out.chains.push([ext, ['jump mark-for-masquerade', `goto ${svc}`]]);
    else {
      // Pods and the node itself may use any endpoint; outside clients only local ones, their address kept.
      const rules = [...(cfg.nodePodCIDR ? [`ip saddr ${cfg.nodePodCIDR} goto ${svc}`] : []), 'fib saddr type local jump mark-for-masquerade', `fib saddr type local goto ${svc}`];
      if (local.length) rules.push(`goto ${loc}`);
      else noEndpoints('drop', false, true);
      out.chains.push([ext, rules]);
    }
    externalTargets(`goto ${ext}`);
  }
  return out;
}

const MAP_SPECS: Record<string, [string, string]> = {
  'service-ips': ['type ipv4_addr . inet_proto . inet_service : verdict', 'ClusterIP and external IP traffic'],
  'service-nodeports': ['type inet_proto . inet_service : verdict', 'NodePort traffic'],
  'no-endpoint-services': ['type ipv4_addr . inet_proto . inet_service : verdict', 'vmap to drop or reject packets to services with no endpoints'],
  'no-endpoint-nodeports': ['type inet_proto . inet_service : verdict', 'vmap to drop or reject packets to service nodeports with no endpoints'],
};

/** The declaration of a collection, by name. */
function collectionSpec(name: string): Pick<NftCollection, 'kind' | 'spec'> {
  if (MAP_SPECS[name]) return { kind: 'map', spec: [MAP_SPECS[name]![0], `comment "${MAP_SPECS[name]![1]}"`] };
  if (name === 'hairpin') return { kind: 'set', spec: ['type ipv4_addr . ipv4_addr', 'comment "endpoint . endpoint: a pod reaching itself through a Service"'] };
  const n = Number(name.slice('backends-'.length));
  return { kind: 'map', spec: [`typeof ip daddr . meta l4proto . th dport . numgen random mod ${n} : ip daddr . th dport`, `comment "endpoints of the Services with ${n} endpoint${n === 1 ? '' : 's'}"`] };
}

function groupChain(n: number, cfg: NftConfig): string[] {
  return [`ip saddr != ${cfg.clusterCIDR} jump mark-for-masquerade`, `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod ${n} map @backends-${n}`];
}

/** The table kubewire wants for these Service ports (pure). */
export function buildTable(ports: ServicePortInfo[], cfg: NftConfig): NftTable {
  return assemble(ports.map((sp) => contribution(sp, cfg)), cfg);
}

function assemble(contributions: Contribution[], cfg: NftConfig): NftTable {
  const mark = `0x${(1 << (cfg.masqueradeBit ?? 14)).toString(16).padStart(8, '0')}`;
  const notLoopback = `ip daddr != 127.0.0.0/8`;
  const collections = new Map<string, NftCollection>();
  for (const name of [...Object.keys(MAP_SPECS), 'hairpin']) collections.set(name, { ...collectionSpec(name), elements: new Map() });
  const groups = [...new Set(contributions.flatMap((c) => c.groups))].sort((a, b) => a - b);
  for (const n of groups) collections.set(`backends-${n}`, { ...collectionSpec(`backends-${n}`), elements: new Map() });
  const chains: Array<[string, string[]]> = [];
  for (const c of contributions) {
    for (const [coll, k, v] of c.elements) collections.get(coll)!.elements.set(k, v);
    for (const [name, seconds] of c.affinitySets) collections.set(name, { kind: 'set', spec: ['type ipv4_addr', 'flags dynamic,timeout', `timeout ${seconds}s`], elements: new Map() });
    chains.push(...c.chains);
  }
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
  for (const n of groups) all.set(`group-${n}`, groupChain(n, cfg));
  for (const [name, rules] of chains) all.set(name, rules);
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


const spKey = (sp: ServicePortInfo) => `${servicePortName(sp)}/${sp.protocol}`;

/**
 * What the kernel holds, by Service port, so that a sync sends only what changed. Ports are
 * compared by identity: the proxier hands over the same object for a Service that did not
 * change, so finding the changes costs a pointer check per Service.
 */
export class NftState {
  /**
   * The service ports of the last sync. Their contributions are computed again when one
   * changes (a pure function of the port) rather than kept: at 10,000 Services the kept
   * element strings were most of the daemon's memory.
   */
  private bySp = new Map<string, ServicePortInfo>();
  private hairpin = new Map<string, number>();
  private groups = new Map<number, number>();

  constructor(private readonly cfg: NftConfig) {}

  /** The whole table (first sync, or after a failure); the state starts over from it. */
  full(ports: ServicePortInfo[]): { script: string; table: NftTable } {
    this.bySp.clear();
    this.hairpin.clear();
    this.groups.clear();
    this.totals = { serviceIPs: 0, backends: 0, noEndpoint: 0, chains: 0 };
    const all = ports.map((sp) => {
      const c = contribution(sp, this.cfg);
      this.bySp.set(spKey(sp), sp);
      this.count(c, 1);
      return c;
    });
    const table = assemble(all, this.cfg);
    return { script: renderFull(table), table };
  }

  /** The difference from the last sync, as one transaction ('' when nothing changed). */
  update(ports: ServicePortInfo[]): string {
    const changes: Array<[Contribution | undefined, Contribution | undefined]> = [];
    const seen = new Set<string>();
    for (const sp of ports) {
      const k = spKey(sp);
      seen.add(k);
      const prev = this.bySp.get(k);
      if (prev === sp) continue;
      changes.push([prev && contribution(prev, this.cfg), contribution(sp, this.cfg)]);
      this.bySp.set(k, sp);
    }
    for (const [k, prev] of this.bySp) {
      if (seen.has(k)) continue;
      changes.push([contribution(prev, this.cfg), undefined]);
      this.bySp.delete(k);
    }
    if (!changes.length) return '';
    // The counts before, of just what these changes touch (copying all would cost more than the change).
    const hairpinBefore = new Set<string>();
    for (const [old, neu] of changes) for (const [coll, k] of [...(old?.elements ?? []), ...(neu?.elements ?? [])]) if (coll === 'hairpin' && this.hairpin.has(k)) hairpinBefore.add(k);
    const groupsBefore = new Map(this.groups);
    for (const [old, neu] of changes) {
      if (old) this.count(old, -1);
      if (neu) this.count(neu, 1);
    }
    const prevPart: NftTable = { collections: new Map(), chains: new Map() };
    const nextPart: NftTable = { collections: new Map(), chains: new Map() };
    const touch = (t: NftTable, name: string) => {
      let c = t.collections.get(name);
      if (!c) t.collections.set(name, (c = { ...collectionSpec(name), elements: new Map() }));
      return c;
    };
    const exists = (name: string, when: 'before' | 'after') => {
      if (!name.startsWith('backends-')) return true;
      const n = Number(name.slice('backends-'.length));
      return ((when === 'before' ? groupsBefore : this.groups).get(n) ?? 0) > 0;
    };
    touch(prevPart, 'hairpin');
    touch(nextPart, 'hairpin');
    for (const [old, neu] of changes) {
      for (const [coll, k, v] of old?.elements ?? []) {
        if (coll === 'hairpin') {
          if (!this.hairpin.has(k)) prevPart.collections.get('hairpin')!.elements.set(k, '');
          continue;
        }
        touch(prevPart, coll).elements.set(k, v);
        if (exists(coll, 'after')) touch(nextPart, coll);
      }
      for (const [coll, k, v] of neu?.elements ?? []) {
        if (coll === 'hairpin') {
          if (!hairpinBefore.has(k)) nextPart.collections.get('hairpin')!.elements.set(k, '');
          continue;
        }
        touch(nextPart, coll).elements.set(k, v);
        if (exists(coll, 'before')) touch(prevPart, coll);
      }
      for (const [name, rules] of old?.chains ?? []) prevPart.chains.set(name, rules);
      for (const [name, rules] of neu?.chains ?? []) nextPart.chains.set(name, rules);
      for (const [name, seconds] of old?.affinitySets ?? []) prevPart.collections.set(name, { kind: 'set', spec: ['type ipv4_addr', 'flags dynamic,timeout', `timeout ${seconds}s`], elements: new Map() });
      for (const [name, seconds] of neu?.affinitySets ?? []) nextPart.collections.set(name, { kind: 'set', spec: ['type ipv4_addr', 'flags dynamic,timeout', `timeout ${seconds}s`], elements: new Map() });
    }
    // Groups that appear get their chain; groups that empty lose chain and map.
    for (const n of new Set([...groupsBefore.keys(), ...this.groups.keys()])) {
      const before = groupsBefore.get(n) ?? 0;
      const after = this.groups.get(n) ?? 0;
      if (!before && after) nextPart.chains.set(`group-${n}`, groupChain(n, this.cfg));
      if (before && !after) {
        prevPart.chains.set(`group-${n}`, groupChain(n, this.cfg));
        touch(prevPart, `backends-${n}`);
      }
    }
    return renderDiff(prevPart, nextPart);
  }

  private totals = { serviceIPs: 0, backends: 0, noEndpoint: 0, chains: 0 };

  /** Elements and chains the kernel holds (for metrics). */
  counts(): Record<string, number> {
    const t = this.totals;
    return { 'service-ips': t.serviceIPs, backends: t.backends, hairpin: this.hairpin.size, chains: t.chains + this.groups.size, 'no-endpoint': t.noEndpoint };
  }

  private count(c: Contribution, by: 1 | -1): void {
    const t = this.totals;
    t.chains += by * c.chains.length;
    for (const [coll, k] of c.elements) {
      if (coll === 'service-ips') t.serviceIPs += by;
      else if (coll.startsWith('backends-')) t.backends += by;
      else if (coll.startsWith('no-endpoint')) t.noEndpoint += by;
      if (coll !== 'hairpin') continue;
      const n = (this.hairpin.get(k) ?? 0) + by;
      if (n > 0) this.hairpin.set(k, n);
      else this.hairpin.delete(k);
    }
    for (const g of c.groups) {
      const n = (this.groups.get(g) ?? 0) + by;
      if (n > 0) this.groups.set(g, n);
      else this.groups.delete(g);
    }
  }
}
