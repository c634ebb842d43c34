// Request rate limits, as ingress-nginx's `limit-rps` / `limit-rpm`: nginx's limit_req per
// client address, with a burst of limit-burst-multiplier (5) times the rate and nodelay, so
// a request over the limit is refused at once (503, ingress-nginx's limit-req-status-code).
// Addresses in limit-allowlist (limit-whitelist before 1.9) are not limited. nginx keeps the
// counts in memory shared by its workers; here each worker process counts alone (one by
// default on a 2-core node).

import type { Prefix } from '../netaddr/ip.ts';
import { ANNOTATION_PREFIX, inRanges, sourceRanges } from './annotation-values.ts';

export interface RateLimit {
  /** Requests per millisecond. */
  rate: number;
  /** Requests over the rate let through at once. */
  burst: number;
  allowlist: Prefix[];
}

/** The rate limit annotations (`get` reads one by its name after the prefix); undefined without limit-rps or limit-rpm. */
export function rateLimitOf(get: (name: string) => string | undefined, problem: (reason: string, message: string) => void): RateLimit | undefined {
  const positive = (name: string) => {
    const v = get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (Number.isInteger(n) && n > 0) return n;
    problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}${name}: ${JSON.stringify(v)} is not a positive whole number: ignored`);
    return undefined;
  };
  const rps = positive('limit-rps');
  const rpm = positive('limit-rpm');
  if (!rps && !rpm) return undefined;
  // With both, nginx applies both zones; here the stricter rate is kept, with its burst.
  const byMinute = rpm !== undefined && (rps === undefined || rpm / 60 < rps);
  const rate = byMinute ? rpm! / 60_000 : rps! / 1000;
  const multiplier = positive('limit-burst-multiplier') ?? 5;
  const { ranges: allowlist, invalid } = sourceRanges(get('limit-allowlist') ?? get('limit-whitelist') ?? '');
  for (const item of invalid) problem('InvalidAnnotation', `annotation ${ANNOTATION_PREFIX}limit-allowlist: ${JSON.stringify(item)} is not a CIDR or IP address: ignored`);
  return { rate, burst: (byMinute ? rpm! : rps!) * multiplier, allowlist };
}

/** nginx's limit_req state per client: requests waiting in the bucket, as of `at`. */
interface Bucket {
  excess: number;
  at: number;
}

const MAX_CLIENTS = 100_000; // per limit; a full table starts over rather than grow without end

/** Counts requests per limit and client address, as nginx's leaky bucket. */
export class RateLimiter {
  private readonly buckets = new WeakMap<RateLimit, Map<string, Bucket>>();

  /** Whether a request from `client` now goes over `limit` (and is to be refused). */
  over(limit: RateLimit, client: string, now = Date.now()): boolean {
    if (inRanges(limit.allowlist, client)) return false;
    let clients = this.buckets.get(limit);
    if (!clients) this.buckets.set(limit, (clients = new Map()));
    const b = clients.get(client);
    if (!b) {
      if (clients.size >= MAX_CLIENTS) clients.clear();
      clients.set(client, { excess: 0, at: now });
      return false;
    }
    const excess = Math.max(0, b.excess - limit.rate * (now - b.at) + 1);
    if (excess > limit.burst) return true; // refused requests do not fill the bucket
    b.excess = excess;
    b.at = now;
    return false;
  }
}
