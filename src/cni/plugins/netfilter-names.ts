// Names and comments of the iptables chains the CNI plugins own, computed exactly as the
// reference plugins do (pkg/utils), so rules from either are recognised by both.

import { createHash } from 'node:crypto';

const MAX_CHAIN_LENGTH = 28; // iptables' limit on chain names

/** "CNI-" + prefix + hex(sha512(network + containerID)), cut to 28 characters. */
export function chainName(network: string, containerID: string, prefix = ''): string {
  const hash = createHash('sha512').update(network + containerID).digest('hex');
  return `CNI-${prefix}${hash}`.slice(0, MAX_CHAIN_LENGTH);
}

/** The comment tying a rule to its attachment: name: "net" id: "cid" (Go's %q quoting). */
export function attachmentComment(network: string, containerID: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerID)}`;
}

/** Reads back the container ID from a rule carrying attachmentComment for `network`. */
export function containerOfRule(rule: string, network: string): string | undefined {
  const m = /name: \\"([^"\\]*)\\" id: \\"([^"\\]*)\\"/.exec(rule) ?? /name: "([^"]*)" id: "([^"]*)"/.exec(rule);
  return m && m[1] === network ? m[2] : undefined;
}

/** Quotes an argument for an iptables-restore line. */
export function quoteArg(arg: string): string {
  return /^[A-Za-z0-9_./:!,=-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}
