// Which IP to hand out: the reference plugin's round-robin order. Pure: the store's state
// comes in as a view, the decision goes out as an IP.

import { addToIP, compareIP, ipEqual, type IP } from '../../../netaddr/ip.ts';
import type { Range, RangeSet } from './config.ts';

function inRange(r: Range, ip: IP): boolean {
  return ip.family === r.rangeStart.family && compareIP(ip, r.rangeStart) >= 0 && compareIP(ip, r.rangeEnd) <= 0;
}

export function rangeOf(set: RangeSet, ip: IP): Range | undefined {
  return set.find((r) => inRange(r, ip));
}

/**
 * Candidate addresses in allocation order: from just after the last reserved IP (when it is
 * still in the set) round the ranges, wrapping, ending where it began; gateways are skipped.
 * A pod that crash-loops thus gets a fresh IP each time, as with the reference plugin.
 */
export function* candidates(set: RangeSet, lastReserved?: IP): Generator<IP> {
  let index = 0;
  let current = set[0]!.rangeStart;
  const advance = (): void => {
    if (ipEqual(current, set[index]!.rangeEnd)) {
      index = (index + 1) % set.length;
      current = set[index]!.rangeStart;
    } else {
      current = addToIP(current, 1n);
    }
  };
  const last = lastReserved ? set.findIndex((r) => inRange(r, lastReserved)) : -1;
  if (last >= 0) {
    index = last;
    current = lastReserved!;
    advance();
  }
  const startIndex = index;
  const start = current;
  do {
    const gw = set[index]!.gateway;
    if (!gw || !ipEqual(gw, current)) yield current;
    advance();
  } while (!(index === startIndex && ipEqual(current, start)));
}

/** The first free candidate, or undefined when the set is exhausted. */
export function nextFree(set: RangeSet, isAllocated: (ip: IP) => boolean, lastReserved?: IP): IP | undefined {
  for (const ip of candidates(set, lastReserved)) if (!isAllocated(ip)) return ip;
  return undefined;
}
