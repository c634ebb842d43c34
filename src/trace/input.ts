// What a user asks `kubewire trace` (the CLI's arguments, the page's form) checked in one place
// (pure): each part parsed or refused with one line naming it, before anything is resolved
// against the cluster or put in a kernel. The cluster's own checks (the pod exists, the address
// is one of the cluster's) follow in trace.ts, with the same error class.

export class TraceError extends Error {
  override name = 'TraceError';
}

export type Protocol = 'tcp' | 'udp' | 'icmp';

export interface TraceRequest {
  from: string;
  /** pod/NAME, service/NAME, node/NAME, IPv4, IPv4:PORT, or http(s)://HOST/PATH. */
  to: string;
  port?: number;
  protocol?: Protocol;
  /** FROM's namespace (and TO's, unless toNamespace says otherwise). */
  namespace: string;
  /** TO's namespace when TO named it (a Service's DNS name: web.shop.svc.cluster.local). */
  toNamespace?: string;
  /** A URL is sent to this node's ingress controller (the first node when not given). */
  node?: string;
}

/** What the CLI's arguments or the page's JSON body hold, as given (strings, numbers, anything). */
export interface RawTraceRequest {
  from?: unknown;
  to?: unknown;
  port?: unknown;
  protocol?: unknown;
  namespace?: unknown;
  node?: unknown;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const KINDS: Record<string, 'pod' | 'node' | 'service'> = { pod: 'pod', pods: 'pod', po: 'pod', node: 'node', nodes: 'node', no: 'node', service: 'service', services: 'service', svc: 'service' };

/** A port as given (a number, or a string of digits), or why not. */
export function parsePort(value: unknown, what: string): number {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  if (text === undefined || !/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new TraceError(`${what} ${JSON.stringify(value)}: a port is a number from 1 to 65535`);
  }
  return Number(text);
}

/** An IPv4 address in dotted-quad form (four numbers 0-255, no leading zeros), or undefined. */
export function ipv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.map(Number);
}

/** Why an address cannot be a probe's destination, whatever the cluster (loopback, unspecified, multicast, broadcast). */
export function unusableAddress(ip: number[]): string | undefined {
  const [a] = ip as [number];
  if (a === 127) return 'a loopback address: the probe would never leave the sender\'s own namespace (every pod and node has its own loopback); trace a pod, a Service or a node by its name or cluster address';
  if (a === 0) return 'the unspecified address is no destination';
  if (a >= 224 && a <= 239) return 'a multicast address: a trace follows one packet to one destination';
  if (a >= 240) return ip.every((o) => o === 255) ? 'the broadcast address: a trace follows one packet to one destination' : 'a reserved address (240.0.0.0/4)';
  return undefined;
}

function refLike(text: string): boolean {
  return /^[a-z]+\//.test(text);
}

/** FROM: external, pod/NAME, node/NAME. */
function parseFrom(value: unknown): string {
  if (typeof value !== 'string' || !value.trim()) throw new TraceError('FROM is missing: pod/NAME, node/NAME or external');
  const from = value.trim();
  if (from === 'external') return from;
  const m = /^([a-z]+)\/(.*)$/.exec(from);
  const kind = m ? KINDS[m[1]!] : undefined;
  if (!m || !kind || kind === 'service') throw new TraceError(`FROM ${JSON.stringify(from)}: expected pod/NAME, node/NAME or external`);
  if (!DNS_SUBDOMAIN.test(m[2]!)) throw new TraceError(`FROM ${JSON.stringify(from)}: ${JSON.stringify(m[2])} is not a valid ${kind} name`);
  return `${kind}/${m[2]}`;
}

/** TO in one of its forms, normalised: KIND/NAME, IPv4[:PORT], http(s)://HOST[:PORT]/PATH, or a Service's DNS name[:PORT]. */
function parseTo(value: unknown, namespace: string): { to: string; port?: number; toNamespace?: string } {
  if (typeof value !== 'string' || !value.trim()) throw new TraceError('TO is missing: pod/NAME, service/NAME, an IP, IP:PORT or http(s)://HOST/PATH');
  const to = value.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(to)) {
    let url: URL;
    try {
      url = new URL(to);
    } catch {
      throw new TraceError(`TO ${JSON.stringify(to)}: not a URL such as http://shop.example/cart`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TraceError(`TO ${JSON.stringify(to)}: only http:// and https:// are traced (through the ingress)`);
    if (url.username || url.password) throw new TraceError(`TO ${JSON.stringify(to)}: a URL with credentials is not traced`);
    const host = url.hostname;
    const ip = ipv4(host);
    if (ip && unusableAddress(ip)) throw new TraceError(`TO ${JSON.stringify(to)}: ${host} is ${unusableAddress(ip)}`);
    if (!ip && !DNS_SUBDOMAIN.test(host)) throw new TraceError(`TO ${JSON.stringify(to)}: ${JSON.stringify(host)} is not a host name`);
    return { to: url.href };
  }
  if (refLike(to)) {
    const m = /^([a-z]+)\/(.*)$/.exec(to)!;
    const kind = KINDS[m[1]!];
    if (!kind) throw new TraceError(`TO ${JSON.stringify(to)}: expected KIND/NAME (pod/web, service/web), an IP, IP:PORT or http(s)://HOST/PATH`);
    if (!DNS_SUBDOMAIN.test(m[2]!)) throw new TraceError(`TO ${JSON.stringify(to)}: ${JSON.stringify(m[2])} is not a valid ${kind} name`);
    if (kind === 'node') throw new TraceError(`TO ${JSON.stringify(to)}: a node is not a destination; trace its address (IP or IP:PORT)`);
    return { to: `${kind}/${m[2]}` };
  }
  const hostPort = /^([^:/]+)(?::([^:]*))?$/.exec(to);
  if (!hostPort) throw new TraceError(`TO ${JSON.stringify(to)}: expected KIND/NAME (pod/web, service/web), an IP, IP:PORT or http(s)://HOST/PATH`);
  const [, host, portText] = hostPort as unknown as [string, string, string | undefined];
  const port = portText === undefined ? undefined : parsePort(portText, `TO ${JSON.stringify(to)}: port`);
  if (/^[\d.]+$/.test(host)) {
    const ip = ipv4(host);
    if (!ip) throw new TraceError(`TO ${JSON.stringify(to)}: ${JSON.stringify(host)} is not an IPv4 address (four numbers from 0 to 255)`);
    const why = unusableAddress(ip);
    if (why) throw new TraceError(`TO ${JSON.stringify(to)}: ${host} is ${why}`);
    return { to: host, ...(port !== undefined ? { port } : {}) };
  }
  // A Service's DNS name, as a pod would ask the cluster DNS: NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local.
  const labels = host.toLowerCase().replace(/\.$/, '').split('.');
  const [name, ns, svc, ...domain] = labels as [string, string | undefined, string | undefined, ...string[]];
  const shape = labels.length <= 2 || (svc === 'svc' && (domain.length === 0 || domain.join('.') === 'cluster.local'));
  if (!shape || !labels.every((l) => DNS_LABEL.test(l))) {
    throw new TraceError(`TO ${JSON.stringify(to)}: not a name of the cluster (a Service as NAME, NAME.NAMESPACE or NAME.NAMESPACE.svc.cluster.local), an IP or a URL`);
  }
  return { to: `service/${name}`, ...(port !== undefined ? { port } : {}), ...(ns && ns !== namespace ? { toNamespace: ns } : {}) };
}

/** The whole request checked: each field parsed, or a TraceError naming the one that is wrong. */
export function parseTraceRequest(raw: RawTraceRequest): TraceRequest {
  const namespace = raw.namespace === undefined || raw.namespace === '' ? 'default' : raw.namespace;
  if (typeof namespace !== 'string' || !DNS_LABEL.test(namespace)) throw new TraceError(`namespace ${JSON.stringify(namespace)}: not a valid namespace name`);
  const from = parseFrom(raw.from);
  const to = parseTo(raw.to, namespace);
  const port = raw.port === undefined || raw.port === '' || raw.port === null ? undefined : parsePort(raw.port, '--port');
  if (port !== undefined && to.port !== undefined && port !== to.port) throw new TraceError(`--port ${port} and TO ${JSON.stringify(raw.to)} name different ports`);
  let protocol: Protocol | undefined;
  if (raw.protocol !== undefined && raw.protocol !== '' && raw.protocol !== null) {
    if (raw.protocol !== 'tcp' && raw.protocol !== 'udp' && raw.protocol !== 'icmp') throw new TraceError(`--protocol ${JSON.stringify(raw.protocol)}: must be tcp, udp or icmp`);
    protocol = raw.protocol;
  }
  if (/^https?:/.test(to.to) && protocol && protocol !== 'tcp') throw new TraceError(`TO ${to.to}: a URL is traced over tcp, not ${protocol}`);
  if (protocol === 'icmp' && (port ?? to.port) !== undefined) throw new TraceError(`--protocol icmp takes no port (${port ?? to.port})`);
  let node: string | undefined;
  if (raw.node !== undefined && raw.node !== '' && raw.node !== null) {
    if (typeof raw.node !== 'string' || !DNS_SUBDOMAIN.test(raw.node)) throw new TraceError(`--node ${JSON.stringify(raw.node)}: not a valid node name`);
    if (!/^https?:/.test(to.to)) throw new TraceError(`--node ${raw.node}: only a URL (through a node's ingress controller) takes --node`);
    node = raw.node;
  }
  // IP:PORT and NAME:PORT give the port in TO; the request carries it as --port does.
  const p = port ?? to.port;
  return { from, to: to.to, namespace, ...(to.toNamespace ? { toNamespace: to.toNamespace } : {}), ...(p !== undefined ? { port: p } : {}), ...(protocol ? { protocol } : {}), ...(node ? { node } : {}) };
}
