// What a pod's containers see of names, as the kubelet writes it (pure): /etc/resolv.conf by
// dnsPolicy (ClusterFirst: the cluster DNS and the pod namespace's search path, ndots:5;
// Default: the node's; None: only dnsConfig) with dnsConfig merged in, /etc/hosts with the
// pod's own address and name (and hostAliases), and the hostname (spec.hostname, else the
// pod's name). The node agent writes them into the pod's directory; every container process
// and `kubewire exec` sees them bound over /etc in a mount namespace of its own
// (supervisor.ts).

import type { Pod } from '../api/types.ts';

/** glibc reads at most 3 nameservers; the kubelet keeps 32 search domains (MaxDNSSearchPaths). */
export const MAX_NAMESERVERS = 3;
export const MAX_SEARCHES = 32;

export interface ResolvConf {
  nameservers: string[];
  searches: string[];
  options: Array<{ name: string; value?: string }>;
}

/** A resolv.conf's nameserver, search/domain and options lines (pure). */
export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], searches: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.searches = rest;
    else if (key === 'options') for (const o of rest) out.options.push(o.includes(':') ? { name: o.slice(0, o.indexOf(':')), value: o.slice(o.indexOf(':') + 1) } : { name: o });
  }
  return out;
}

export function renderResolvConf(r: ResolvConf): string {
  const lines = [
    ...(r.searches.length ? [`search ${r.searches.join(' ')}`] : []),
    ...r.nameservers.map((n) => `nameserver ${n}`),
    ...(r.options.length ? [`options ${r.options.map((o) => (o.value === undefined ? o.name : `${o.name}:${o.value}`)).join(' ')}`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

const unique = (xs: string[]) => [...new Set(xs)];

/** The pod's resolver configuration, as the kubelet builds it (pkg/kubelet/network/dns). */
export function podResolvConf(pod: Pod, o: { zone: string; dnsIP: string; node: ResolvConf }): ResolvConf {
  const policy = pod.spec.dnsPolicy ?? 'ClusterFirst';
  const ns = pod.metadata.namespace ?? 'default';
  let base: ResolvConf;
  if (policy === 'None') base = { nameservers: [], searches: [], options: [] };
  else if (policy === 'Default') base = { ...o.node, options: [...o.node.options] };
  else base = { nameservers: [o.dnsIP], searches: [`${ns}.svc.${o.zone}`, `svc.${o.zone}`, o.zone, ...o.node.searches], options: [{ name: 'ndots', value: '5' }] };
  const cfg = pod.spec.dnsConfig;
  const options = [...base.options];
  for (const opt of cfg?.options ?? []) {
    const i = options.findIndex((x) => x.name === opt.name);
    if (i >= 0) options[i] = opt;
    else options.push(opt);
  }
  return {
    nameservers: unique([...base.nameservers, ...(cfg?.nameservers ?? [])]).slice(0, MAX_NAMESERVERS),
    searches: unique([...base.searches, ...(cfg?.searches ?? [])]).slice(0, MAX_SEARCHES),
    options,
  };
}

/** The pod's hostname: spec.hostname, else its name (at most 63 characters, as the kubelet cuts it). */
export function podHostname(pod: Pod): string {
  return (pod.spec.hostname ?? pod.metadata.name).slice(0, 63).replace(/[-.]+$/, '');
}

/** The kubelet's managed /etc/hosts for a pod. */
export function podHosts(pod: Pod, o: { zone: string; ip: string }): string {
  const hostname = podHostname(pod);
  const fqdn = pod.spec.subdomain ? `${hostname}.${pod.spec.subdomain}.${pod.metadata.namespace ?? 'default'}.svc.${o.zone}` : undefined;
  const lines = [
    '# Kubernetes-managed hosts file.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    `${o.ip}\t${fqdn ? `${fqdn}\t` : ''}${hostname}`,
  ];
  const aliases = pod.spec.hostAliases ?? [];
  if (aliases.length) lines.push('', '# Entries added by HostAliases.', ...aliases.map((a) => `${a.ip}\t${(a.hostnames ?? []).join('\t')}`));
  return `${lines.join('\n')}\n`;
}
