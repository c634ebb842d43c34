// Kernel-side throttling of a source that floods the DNS pod over UDP. The fair queue
// (fair.ts) keeps a flood from delaying other pods' queries once they are read, but every
// datagram of the flood is still read by the server's one thread (several microseconds
// each) and waits in the socket's buffer with everyone else's while the thread is busy or
// off the CPU (measured under a machine's load: 1.7 MB in Recv-Q, normal queries 15 ms at
// p50 behind it). A source whose queue overflowed is therefore put, for THROTTLE_S (renewed
// by the kernel while it stays over its rate), in an nftables set of the pod's own network
// namespace whose rule lets each member through at RATE datagrams a second and drops the
// rest before the socket. A client that waits for its
// answers (dnsperf keeps 100 out, glibc a handful) never fills its 256 queued and is never
// throttled. CoreDNS has no such limit built in (the external ratelimit plugin limits by source
// always); this one applies only to a source the server could not keep up with.

import { readlinkSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';

const TABLE = 'kubewire_dns';
/** Datagrams a second a throttled source still gets through (a burst of as many). */
export const THROTTLE_RATE = 1_000;
/** How long a source stays throttled after its queue last overflowed or it last went over its rate. */
export const THROTTLE_S = 10;

/** The ruleset (pure): replaces the table whole, so that a restarted server starts clean. */
export function throttleRuleset(port: number): string {
  return [
    `add table ip ${TABLE}`,
    `delete table ip ${TABLE}`,
    `table ip ${TABLE} {`,
    `  set throttled { type ipv4_addr; flags dynamic,timeout; size 4096; }`,
    `  set rate { type ipv4_addr; flags dynamic,timeout; timeout ${THROTTLE_S}s; size 4096; }`,
    `  chain input {`,
    `    type filter hook input priority filter; policy accept;`,
    // A member over its rate stays a member THROTTLE_S more (the kernel renews it): a flood
    // stays throttled for as long as it lasts, without the server having to see it again.
    `    udp dport ${port} ip saddr @throttled update @rate { ip saddr limit rate over ${THROTTLE_RATE}/second burst ${THROTTLE_RATE} packets } update @throttled { ip saddr timeout ${THROTTLE_S}s } counter drop`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}

/** Runs a network tool in this process's network namespace (the CLI passes the dataplane's). */
export type Tools = (argv: string[], input?: string) => Promise<unknown>;

/**
 * Why this process must not install the table, or undefined where it may (pure but for the
 * reads): only in a pod's network namespace, the one that holds the pod's address (POD_IP,
 * set by the node agent), and never the machine's own (when /proc/1 can be read to compare).
 */
export function notAPod(podIP: string | undefined, addresses: string[], ownNetns: () => string, machineNetns: () => string): string | undefined {
  if (!podIP || !addresses.includes(podIP)) return `no interface here holds the pod's address (POD_IP ${podIP ?? 'unset'})`;
  try {
    if (ownNetns() === machineNetns()) return "this is the machine's own network namespace";
  } catch {
    // /proc/1 unreadable (a container's): the pod's address decides
  }
  return undefined;
}

/**
 * Installs the table in this process's network namespace and returns what throttles one
 * address; undefined (and why, to `log`) where it cannot: outside a pod's network namespace
 * (the machine's own is never touched), without nft or the right to use it.
 */
export async function kernelThrottle(port: number, tools: Tools, log: (line: string) => void, podIP = process.env.POD_IP): Promise<((address: string) => void) | undefined> {
  const nft = (args: string[], input?: string) => tools(['nft', ...args], input);
  const addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
  const refused = notAPod(podIP, addresses, () => readlinkSync('/proc/self/ns/net'), () => readlinkSync('/proc/1/ns/net'));
  if (refused) {
    log(`UDP sources not throttled in the kernel: ${refused}`);
    return undefined;
  }
  try {
    await nft(['-f', '-'], throttleRuleset(port));
  } catch (e) {
    log(`UDP sources not throttled in the kernel: ${(e as Error).message}`);
    return undefined;
  }
  return (address) => {
    if (!isIPv4(address)) return;
    nft(['add', 'element', 'ip', TABLE, 'throttled', `{ ${address} timeout ${THROTTLE_S}s }`]).then(
      () => log(`throttling ${address} to ${THROTTLE_RATE} queries/s for ${THROTTLE_S} s: its queue overflowed`),
      (e: Error) => log(`throttling ${address}: ${e.message}`),
    );
  };
}
