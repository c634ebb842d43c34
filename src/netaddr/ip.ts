// IP addresses and CIDR prefixes as plain values (bigint arithmetic), for IPAM,
// routes and rule generation. Pure: no I/O.

export type Family = 4 | 6;

export interface IP {
  readonly family: Family;
  readonly value: bigint;
}

/** A prefix such as 10.244.1.0/24. `ip` keeps the host bits as written (10.244.1.5/24). */
export interface Prefix {
  readonly ip: IP;
  readonly bits: number;
}

const WIDTH: Record<Family, number> = { 4: 32, 6: 128 };

export class AddressError extends Error {
  override name = 'AddressError';
}

export function parseIP(text: string): IP {
  const ip = tryParseIP(text);
  if (!ip) throw new AddressError(`invalid IP address ${JSON.stringify(text)}`);
  return ip;
}

export function tryParseIP(text: string): IP | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.includes(':')) return parseIPv6(text);
  return parseIPv4(text);
}

function parseIPv4(text: string): IP | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return { family: 4, value };
}

function parseIPv6(text: string): IP | undefined {
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  let body = text;
  const lastColon = body.lastIndexOf(':');
  const tail = body.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail);
    if (!v4) return undefined;
    const hi = Number(v4.value >> 16n).toString(16);
    const lo = Number(v4.value & 0xffffn).toString(16);
    body = `${body.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  let value = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return { family: 6, value };
}

export function formatIP(ip: IP): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function parsePrefix(text: string): Prefix {
  const p = tryParsePrefix(text);
  if (!p) throw new AddressError(`invalid CIDR ${JSON.stringify(text)}`);
  return p;
}

export function tryParsePrefix(text: string): Prefix | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = tryParseIP(text.slice(0, slash));
  const bitsText = text.slice(slash + 1);
  if (!ip || !/^[0-9]{1,3}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  if (bits > WIDTH[ip.family]) return undefined;
  return { ip, bits };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIP(p.ip)}/${p.bits}`;
}

export function width(family: Family): number {
  return WIDTH[family];
}

function hostMask(p: Prefix): bigint {
  return (1n << BigInt(WIDTH[p.ip.family] - p.bits)) - 1n;
}

/** The network address: host bits cleared. */
export function networkOf(p: Prefix): Prefix {
  return { ip: { family: p.ip.family, value: p.ip.value & ~hostMask(p) }, bits: p.bits };
}

export function firstIP(p: Prefix): IP {
  return networkOf(p).ip;
}

export function lastIP(p: Prefix): IP {
  return { family: p.ip.family, value: networkOf(p).ip.value | hostMask(p) };
}

export function contains(p: Prefix, ip: IP): boolean {
  return p.ip.family === ip.family && (ip.value & ~hostMask(p)) === (p.ip.value & ~hostMask(p));
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return contains(a, b.ip) || contains(b, a.ip);
}

export function addToIP(ip: IP, n: bigint): IP {
  const max = (1n << BigInt(WIDTH[ip.family])) - 1n;
  const value = ip.value + n;
  if (value < 0n || value > max) throw new AddressError(`address arithmetic overflows ${formatIP(ip)}`);
  return { family: ip.family, value };
}

export function ipEqual(a: IP, b: IP): boolean {
  return a.family === b.family && a.value === b.value;
}

export function compareIP(a: IP, b: IP): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export function defaultRoute(family: Family): string {
  return family === 4 ? '0.0.0.0/0' : '::/0';
}

/** `IP:PORT`, `[IPv6]:PORT` or a bare IP (with `defaultPort`) as host and port, as Go's net.SplitHostPort reads bind addresses; undefined when it is none of them. */
export function parseHostPort(text: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d{1,5}))?$/.exec(text);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const ip = tryParseIP(host);
  if (!ip || (m[1] !== undefined) !== (ip.family === 6)) return undefined;
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  return port >= 1 && port <= 65535 ? { host, port } : undefined;
}
