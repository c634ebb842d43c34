// What the annotation readers share: ingress-nginx's annotation prefix and its source-range
// values (allowlists, rate-limit exemptions), read once and matched per request.

import { contains, tryParseIP, tryParsePrefix, width, type Prefix } from '../netaddr/ip.ts';

export const ANNOTATION_PREFIX = 'nginx.ingress.kubernetes.io/';

/** A list of source ranges (allowlist-source-range, limit-allowlist): CIDRs or addresses, comma-separated; what cannot be read is in `invalid`. */
export function sourceRanges(value: string): { ranges: Prefix[]; invalid: string[] } {
  const ranges: Prefix[] = [];
  const invalid: string[] = [];
  for (const item of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const ip = item.includes('/') ? undefined : tryParseIP(item);
    const prefix = ip ? { ip, bits: width(ip.family) } : tryParsePrefix(item);
    if (prefix) ranges.push(prefix);
    else invalid.push(item);
  }
  return { ranges, invalid };
}

/** Whether a client address (as a socket gives it: IPv4 may come IPv6-mapped) is in one of the ranges. */
export function inRanges(ranges: readonly Prefix[], client: string): boolean {
  const ip = tryParseIP(client.startsWith('::ffff:') && client.includes('.') ? client.slice(7) : client);
  return ip !== undefined && ranges.some((p) => contains(p, ip));
}
