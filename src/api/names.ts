// Names the server makes: generateName's random suffix and the pod-template-hash, both in
// Kubernetes' SafeEncodeString alphabet (no vowels, no look-alikes: names never spell words).

import { randomBytes } from 'node:crypto';

const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
/** A generated name keeps a DNS label's 63 characters: the prefix is cut to 58, then 5 random ones. */
const MAX_PREFIX = 58;

export function safeEncode(bytes: Buffer, length: number): string {
  return Array.from(bytes.subarray(0, length), (b) => ALPHABET[b % ALPHABET.length]).join('');
}

/** metadata.generateName made into a name, as the API server's names.SimpleNameGenerator does. */
export function generateName(prefix: string): string {
  return `${prefix.slice(0, MAX_PREFIX)}${safeEncode(randomBytes(5), 5)}`;
}

/**
 * A name from `prefix` that `taken` says is free, drawing again on a collision (the API
 * server retries generateName, KEP-4420); undefined after `tries` draws all taken.
 */
export function freeGeneratedName(prefix: string, taken: (name: string) => boolean, tries: number, draw: (prefix: string) => string = generateName): string | undefined {
  for (let i = 0; i < tries; i++) {
    const name = draw(prefix);
    if (!taken(name)) return name;
  }
  return undefined;
}
