// kube-proxy's configuration (pure): a KubeProxyConfiguration file
// (kubeproxy.config.k8s.io/v1alpha1, decoded strictly as kube-proxy decodes it: an unknown
// field is an error), kube-proxy's flags over it (a flag given on the command line wins, as
// upstream), and its defaults (pkg/proxy/apis/config/v1alpha1/defaults.go).

import { parse } from 'yaml';
import { parseHostPort, tryParsePrefix } from '../netaddr/ip.ts';

export type ProxyMode = 'iptables' | 'nftables' | 'ipvs';

export interface ProxyConfig {
  kubeconfig?: string;
  hostnameOverride?: string;
  mode: ProxyMode;
  /** The cluster's pod range: traffic to a ClusterIP from outside it is masqueraded. */
  clusterCIDR?: string;
  healthzBindAddress: string;
  metricsBindAddress: string;
  /** Least time between syncs (the mode's minSyncPeriod; 1 s upstream). */
  minSyncMs: number;
  /** How long a queued change may wait before /healthz says unhealthy (2 x syncPeriod). */
  healthTimeoutMs: number;
  ipvsScheduler?: string;
  ipvsStrictARP?: boolean;
}

export const DEFAULTS: ProxyConfig = { mode: 'iptables', healthzBindAddress: '0.0.0.0:10256', metricsBindAddress: '127.0.0.1:10249', minSyncMs: 1000, healthTimeoutMs: 60_000 };

export class ProxyConfigError extends Error {}

export const API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';

/** v1alpha1's fields: those kubewire acts on, and those it accepts and leaves (they mean nothing here, or are kube-proxy's defaults). */
const TOP = new Set(['apiVersion', 'kind', 'featureGates', 'clientConnection', 'logging', 'hostnameOverride', 'bindAddress', 'healthzBindAddress', 'metricsBindAddress', 'bindAddressHardFail', 'enableProfiling', 'showHiddenMetricsForVersion', 'mode', 'iptables', 'ipvs', 'nftables', 'winkernel', 'detectLocalMode', 'detectLocal', 'clusterCIDR', 'nodePortAddresses', 'oomScoreAdj', 'conntrack', 'configSyncPeriod', 'portRange', 'windowsRunAsService', 'syncPeriod', 'minSyncPeriod', 'linux']);
const NESTED: Record<string, Set<string>> = {
  clientConnection: new Set(['kubeconfig', 'acceptContentTypes', 'contentType', 'qps', 'burst']),
  iptables: new Set(['masqueradeAll', 'masqueradeBit', 'localhostNodePorts', 'syncPeriod', 'minSyncPeriod']),
  nftables: new Set(['masqueradeAll', 'masqueradeBit', 'syncPeriod', 'minSyncPeriod']),
  ipvs: new Set(['syncPeriod', 'minSyncPeriod', 'scheduler', 'excludeCIDRs', 'strictARP', 'tcpTimeout', 'tcpFinTimeout', 'udpTimeout']),
};

/** A Go duration ("1s", "500ms", "1m30s", "0") in milliseconds; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * units[m[2]!]!;
    at = re.lastIndex;
  }
  return at ? total : undefined;
}

const obj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The settings of a KubeProxyConfiguration file's text; throws a ProxyConfigError naming the file and field. */
export function parseConfigFile(text: string, file: string): Partial<ProxyConfig> {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new ProxyConfigError(`--config ${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!obj(doc)) throw new ProxyConfigError(`--config ${file}: not a KubeProxyConfiguration (its top level is not a mapping)`);
  const bad = (field: string, why: string) => new ProxyConfigError(`--config ${file}: ${field}: ${why}`);
  if (doc.kind !== 'KubeProxyConfiguration') throw bad('kind', `must be KubeProxyConfiguration, not ${JSON.stringify(doc.kind)}`);
  if (doc.apiVersion !== API_VERSION) throw bad('apiVersion', `must be ${API_VERSION}, not ${JSON.stringify(doc.apiVersion)}`);
  for (const k of Object.keys(doc)) if (!TOP.has(k)) throw bad(k, 'unknown field (strict decoding)');
  for (const [section, fields] of Object.entries(NESTED)) {
    const v = doc[section];
    if (v === undefined || v === null) continue;
    if (!obj(v)) throw bad(section, 'must be a mapping');
    for (const k of Object.keys(v)) if (!fields.has(k)) throw bad(`${section}.${k}`, 'unknown field (strict decoding)');
  }
  const str = (v: unknown, field: string): string | undefined => {
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw bad(field, 'must be a string');
    return v;
  };
  const duration = (v: unknown, field: string): number | undefined => {
    const s = str(v, field);
    if (s === undefined) return undefined;
    const ms = parseDuration(s);
    if (ms === undefined) throw bad(field, `${JSON.stringify(s)} is not a duration such as 1s or 500ms`);
    return ms;
  };
  const section = (name: string) => (obj(doc[name]) ? (doc[name] as Record<string, unknown>) : {});
  const out: Partial<ProxyConfig> = {};
  const set = <K extends keyof ProxyConfig>(k: K, v: ProxyConfig[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('kubeconfig', str(section('clientConnection').kubeconfig, 'clientConnection.kubeconfig'));
  set('hostnameOverride', str(doc.hostnameOverride, 'hostnameOverride'));
  set('mode', str(doc.mode, 'mode') as ProxyMode | undefined);
  set('clusterCIDR', str(doc.clusterCIDR, 'clusterCIDR'));
  set('healthzBindAddress', str(doc.healthzBindAddress, 'healthzBindAddress'));
  set('metricsBindAddress', str(doc.metricsBindAddress, 'metricsBindAddress'));
  const mode = out.mode ?? DEFAULTS.mode;
  // The mode's own section first, then the top-level fields newer releases have.
  set('minSyncMs', duration(section(mode).minSyncPeriod, `${mode}.minSyncPeriod`) ?? duration(doc.minSyncPeriod, 'minSyncPeriod'));
  const sync = duration(section(mode).syncPeriod, `${mode}.syncPeriod`) ?? duration(doc.syncPeriod, 'syncPeriod');
  if (sync !== undefined) out.healthTimeoutMs = 2 * sync;
  set('ipvsScheduler', str(section('ipvs').scheduler, 'ipvs.scheduler'));
  const strict = section('ipvs').strictARP;
  if (strict !== undefined && typeof strict !== 'boolean') throw bad('ipvs.strictARP', 'must be true or false');
  set('ipvsStrictARP', strict as boolean | undefined);
  return out;
}

/** Defaults, then the file, then the flags given on the command line; checked whole. */
export function resolveConfig(file: Partial<ProxyConfig>, flags: Partial<ProxyConfig>): ProxyConfig {
  const c: ProxyConfig = { ...DEFAULTS, ...file, ...flags };
  if (!['iptables', 'nftables', 'ipvs'].includes(c.mode)) throw new ProxyConfigError(`--proxy-mode ${JSON.stringify(c.mode)}: must be iptables, nftables or ipvs`);
  if (c.clusterCIDR !== undefined && !tryParsePrefix(c.clusterCIDR)) throw new ProxyConfigError(`--cluster-cidr ${JSON.stringify(c.clusterCIDR)} is not a CIDR such as 10.244.0.0/16`);
  if (!parseHostPort(c.healthzBindAddress, 10256)) throw new ProxyConfigError(`--healthz-bind-address ${JSON.stringify(c.healthzBindAddress)} is not IP:PORT`);
  if (!parseHostPort(c.metricsBindAddress, 10249)) throw new ProxyConfigError(`--metrics-bind-address ${JSON.stringify(c.metricsBindAddress)} is not IP:PORT`);
  if (c.hostnameOverride !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(c.hostnameOverride)) throw new ProxyConfigError(`--hostname-override ${JSON.stringify(c.hostnameOverride)} is not a node name (a DNS subdomain)`);
  return c;
}

/**
 * Which iptables to write through when nobody said (the iptables-wrapper kube-proxy's image
 * uses): the one that already holds more of this namespace's rules, kubelet's and the CNI
 * plugins' included; undefined when neither holds any (the system's own then).
 */
export function pickIptables(legacyRules: number, nftRules: number): 'legacy' | 'nft' | undefined {
  if (!legacyRules && !nftRules) return undefined;
  return legacyRules >= nftRules ? 'legacy' : 'nft';
}
