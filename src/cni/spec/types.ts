// Shapes of the CNI spec 1.1: network configuration, results, versions. Results are kept
// internally in the 1.x shape and converted at the edge to the version a caller asked for.

import { CniError, ErrorCode } from './errors.ts';

/** Versions whose configuration and results we understand (0.1.0/0.2.0 results differ too much). */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IPConfig {
  /** CIDR notation: the address and the prefix length of its subnet. */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

/** A plugin's configuration as the runtime hands it over on stdin. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  ipam?: { type?: string; [key: string]: unknown };
  dns?: DNS;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  prevResult?: Result;
  'cni.dev/valid-attachments'?: Attachment[];
  'cni.dev/attachments'?: Attachment[];
  [key: string]: unknown;
}

export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a) ?? [0, 0, 0];
  const pb = parseVersion(b) ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

export function atLeast(version: string, min: string): boolean {
  return compareVersions(version, min) >= 0;
}

export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/**
 * Brings a result (prevResult, or a delegate's answer) of any supported version into the
 * 1.x shape: drops `ips[].version`, which 1.0.0 removed.
 */
export function normalizeResult(raw: unknown, where: string): Result {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.DecodingFailure, `${where} is not a JSON object`);
  }
  const r = raw as Record<string, unknown>;
  const result: Result = { cniVersion: typeof r.cniVersion === 'string' ? r.cniVersion : CURRENT_VERSION };
  if (r.interfaces !== undefined) {
    if (!Array.isArray(r.interfaces)) throw new CniError(ErrorCode.DecodingFailure, `${where}.interfaces is not a list`);
    result.interfaces = r.interfaces as Interface[];
  }
  if (r.ips !== undefined) {
    if (!Array.isArray(r.ips)) throw new CniError(ErrorCode.DecodingFailure, `${where}.ips is not a list`);
    result.ips = (r.ips as Array<IPConfig & { version?: string }>).map(({ version: _v, ...ip }) => ip);
  }
  if (r.routes !== undefined) {
    if (!Array.isArray(r.routes)) throw new CniError(ErrorCode.DecodingFailure, `${where}.routes is not a list`);
    result.routes = r.routes as Route[];
  }
  if (r.dns !== undefined) result.dns = r.dns as DNS;
  return result;
}

/** Renders a result in the version the caller's configuration asked for. */
export function convertResult(result: Result, toVersion: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: toVersion };
  const legacy = !atLeast(toVersion, '1.0.0');
  const v11 = atLeast(toVersion, '1.1.0');
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i) => {
      if (v11) return i;
      const { socketPath: _s, pciID: _p, ...rest } = i;
      return rest;
    });
  }
  if (result.ips) {
    out.ips = result.ips.map((ip) =>
      legacy ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : ip,
    );
  }
  if (result.routes) {
    out.routes = result.routes.map((r) => (v11 ? r : { dst: r.dst, ...(r.gw ? { gw: r.gw } : {}) }));
  }
  out.dns = result.dns ?? {};
  return out;
}
