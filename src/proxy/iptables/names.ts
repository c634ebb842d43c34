// kube-proxy's chain names: a prefix and the first 16 characters of base32(sha256(...)) of
// the ServicePortName and protocol (and, for an endpoint, its "ip:port"), so that anyone
// who knows kube-proxy finds the same chains here.

import { createHash } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (standard alphabet), as Go's base32.StdEncoding. */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** 16 base32 characters are the first 80 bits: only those 10 bytes need encoding. */
function hash16(text: string): string {
  return base32(createHash('sha256').update(text).digest().subarray(0, 10));
}

export const serviceChain = (svcPortName: string, protocol: string) => `KUBE-SVC-${hash16(svcPortName + protocol)}`;
export const localChain = (svcPortName: string, protocol: string) => `KUBE-SVL-${hash16(svcPortName + protocol)}`;
export const externalChain = (svcPortName: string, protocol: string) => `KUBE-EXT-${hash16(svcPortName + protocol)}`;
export const firewallChain = (svcPortName: string, protocol: string) => `KUBE-FW-${hash16(svcPortName + protocol)}`;
export const endpointChain = (svcPortName: string, protocol: string, endpoint: string) => `KUBE-SEP-${hash16(svcPortName + protocol + endpoint)}`;
