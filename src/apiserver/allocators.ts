// Service ClusterIPs and NodePorts, allocated as the API server does it: a requested one is
// checked (in range, free), otherwise a random free one is picked (random, so that a just
// released address is not handed out again at once). Pure: the caller passes what is used.

import { randomInt } from 'node:crypto';
import { addToIP, contains, firstIP, formatIP, lastIP, tryParseIP, tryParsePrefix } from '../netaddr/ip.ts';

export const NODE_PORT_RANGE = { min: 30000, max: 32767 } as const;

export class AllocationError extends Error {
  override name = 'AllocationError';
}

/** A ClusterIP from `cidr`: `requested` if in range and free, else a random free one (not the network, first or broadcast address). */
export function allocateClusterIP(cidr: string, used: { has(ip: string): boolean }, requested?: string): string {
  const range = tryParsePrefix(cidr)!;
  if (requested) {
    const ip = tryParseIP(requested);
    if (!ip || !contains(range, ip)) throw new AllocationError(`failed to allocate IP ${requested}: the provided IP (${requested}) is not in the valid range. The range of valid IPs is ${cidr}`);
    const text = formatIP(ip);
    if (used.has(text)) throw new AllocationError(`failed to allocate IP ${requested}: provided IP is already allocated`);
    return text;
  }
  // Usable: from network+2 (network+1 is kept for the API server's own Service, as Kubernetes does) to broadcast-1.
  const first = addToIP(firstIP(range), 2n);
  const span = Math.max(0, Math.min(Number(lastIP(range).value - first.value), 2 ** 31 - 1));
  if (span <= 0) throw new AllocationError(`failed to allocate a service IP: the range ${cidr} is too small`);
  const start = randomInt(span);
  for (let i = 0; i < span; i++) {
    const ip = formatIP(addToIP(first, BigInt((start + i) % span)));
    if (!used.has(ip)) return ip;
  }
  throw new AllocationError(`failed to allocate a service IP: the range ${cidr} is full`);
}

/** A NodePort: `requested` if in range and free, else a random free one. */
export function allocateNodePort(used: { has(port: number): boolean }, requested?: number): number {
  const { min, max } = NODE_PORT_RANGE;
  if (requested !== undefined) {
    if (requested < min || requested > max) throw new AllocationError(`provided port is not in the valid range. The range of valid ports is ${min}-${max}`);
    if (used.has(requested)) throw new AllocationError('provided port is already allocated');
    return requested;
  }
  const span = max - min + 1;
  const start = randomInt(span);
  for (let i = 0; i < span; i++) {
    const port = min + ((start + i) % span);
    if (!used.has(port)) return port;
  }
  throw new AllocationError(`failed to allocate a nodePort: the range ${min}-${max} is full`);
}
