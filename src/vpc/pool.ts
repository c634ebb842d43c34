// A node's pool of VPC addresses and the VPC's own record of who holds what (pure): the
// decisions of the AWS VPC CNI's ipamd (how many to keep warm, which to hand out, which to
// give back) and of the VPC (which free address a node gets next).

import { addToIP, formatIP, parseIP } from '../netaddr/ip.ts';

/** The attachment an address is given to (a pod's interface). */
export interface Holder {
  containerID: string;
  ifName: string;
}

/** A node's addresses: each either given to an attachment or warm (null), in address order. */
export type Pool = Record<string, Holder | null>;

export interface PoolTargets {
  /** Free addresses to keep beyond those in use (WARM_IP_TARGET). */
  warmIPTarget: number;
  /** Addresses to hold at least, used or not (MINIMUM_IP_TARGET). */
  minimumIPTarget: number;
  /** Addresses a node may hold at most: its pod capacity (an instance's ENI limits, here --max-pods). */
  maxIPs: number;
}

export function usedCount(pool: Pool): number {
  return Object.values(pool).filter(Boolean).length;
}

/**
 * How many addresses to ask the VPC for (> 0) or give back (< 0): enough for the free ones to
 * meet WARM_IP_TARGET and the total MINIMUM_IP_TARGET, never more than the node may hold.
 * What is given back is always free: the target never falls below what is in use.
 */
export function poolChange(total: number, used: number, t: PoolTargets): number {
  const want = Math.max(used, Math.min(t.maxIPs, Math.max(used + t.warmIPTarget, t.minimumIPTarget)));
  return want - total;
}

const sameHolder = (a: Holder | null, b: Holder): boolean => a !== null && a.containerID === b.containerID && a.ifName === b.ifName;

/**
 * The address for an attachment: the one it already has (an ADD retried), else the lowest
 * free one that is not cooling down; undefined when none is. `cooling`: addresses freed too
 * recently to be given again (the AWS VPC CNI's IP_COOLDOWN_PERIOD), so that a new pod does
 * not inherit connections still addressed to the old one.
 */
export function assign(pool: Pool, who: Holder, cooling: ReadonlySet<string> = new Set()): string | undefined {
  const addresses = Object.keys(pool);
  return addresses.find((a) => sameHolder(pool[a]!, who)) ?? addresses.find((a) => pool[a] === null && !cooling.has(a));
}

/** The address an attachment holds, if any (DEL of an attachment already gone finds none). */
export function addressOf(pool: Pool, who: Holder): string | undefined {
  return Object.keys(pool).find((a) => sameHolder(pool[a]!, who));
}

/** Which free addresses to give back: the highest first, so that the pool stays low and compact; cooling ones only when they must. */
export function toRelease(pool: Pool, count: number, cooling: ReadonlySet<string> = new Set()): string[] {
  const free = Object.keys(pool).filter((a) => pool[a] === null).sort(compareIPs).reverse();
  return [...free.filter((a) => !cooling.has(a)), ...free.filter((a) => cooling.has(a))].slice(0, count);
}

export function compareIPs(a: string, b: string): number {
  const x = parseIP(a).value;
  const y = parseIP(b).value;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The pool with `addresses` added as warm ones, in address order. */
export function withAddresses(pool: Pool, addresses: string[]): Pool {
  const out: Pool = {};
  for (const a of [...Object.keys(pool), ...addresses].sort(compareIPs)) out[a] = pool[a] ?? null;
  return out;
}

export function withoutAddresses(pool: Pool, addresses: string[]): Pool {
  const gone = new Set(addresses);
  return Object.fromEntries(Object.entries(pool).filter(([a]) => !gone.has(a)));
}

/** The VPC's record: which node holds each secondary address. */
export type VpcRecord = Record<string, string>;

/** The lowest `count` addresses of [first, last] that no node holds (fewer when the subnet runs out). */
export function freeSecondaries(record: VpcRecord, first: string, last: string, count: number): string[] {
  const out: string[] = [];
  const end = parseIP(last).value;
  for (let ip = parseIP(first); ip.value <= end && out.length < count; ip = addToIP(ip, 1n)) {
    const text = formatIP(ip);
    if (!(text in record)) out.push(text);
  }
  return out;
}
