// `kubewire cni install`: what flannel's and Cilium's install-cni containers do. The plugin
// executables go into a CNI bin directory (/opt/cni/bin), the node's network configuration
// into /etc/cni/net.d. Every file is written beside its target and renamed into place, so a
// runtime starting a plugin meanwhile runs the old one or the new one, whole (never a
// half-written file, never ETXTBSY), and never reads half a conflist.
//
// In the bin directory:
//   bridge, host-local, ...  the C shim (native/cni-shim.c), one copy per plugin name; or,
//                            where the shim is not built (or with shim: false), a wrapper script
//   kubewire-cni-node        the wrapper the shim falls back to: Node.js running the bundle
//   kubewire-cni.cjs         the plugin bundle (all plugins)
//   kubewire-cni.sock        a symlink to the plugin server's socket, when one is given

import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../state/paths.ts';
import { PLUGIN_MARKER } from './invoke/marker.ts';
import { writeConfListAtomically } from './runtime/conflist.ts';

export const PLUGIN_NAMES = ['bridge', 'host-local', 'loopback', 'portmap', 'ptp', 'vpc'] as const;
const BUNDLE = 'kubewire-cni.cjs';
/** The names the shim looks for beside itself (native/cni-shim.c). */
export const SHIM_SOCKET_LINK = 'kubewire-cni.sock';
export const SHIM_FALLBACK = 'kubewire-cni-node';
/** Where `kubewire cni server` listens unless told, and where an installed shim looks by default. */
export const DEFAULT_SERVER_SOCKET = '/run/kubewire/cni.sock';

/** The built plugin bundle, found from this module's location (src/ or dist/). */
export function defaultBundlePath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'dist', 'cni-plugins.cjs');
    if (existsSync(candidate)) return candidate;
    if (existsSync(join(dir, 'cni-plugins.cjs'))) return join(dir, 'cni-plugins.cjs');
    dir = dirname(dir);
  }
  throw new Error('the CNI plugin bundle dist/cni-plugins.cjs is missing: run `npm run build` first');
}

/** The C shim built by `npm install` (node-gyp, binding.gyp), if it is there. */
export function builtShimPath(): string | undefined {
  try {
    const path = join(packageRoot(), 'build', 'Release', 'kubewire-cni-shim');
    return existsSync(path) ? path : undefined;
  } catch {
    return undefined; // a bundle copied away from its package
  }
}

/** A script that runs one plugin (`name`), or with no name the plugin named by its first argument. */
export function wrapperScript(name: string | undefined, nodePath: string, bundlePath: string): string {
  for (const p of [nodePath, bundlePath]) {
    if (p.includes("'")) throw new Error(`path ${p} contains a single quote; choose another directory`);
  }
  // NODE_EXTRA_CA_CERTS makes every node start load a CA file: plugins do no TLS, and
  // dropping it halves their start-up time.
  return `#!/bin/sh
# ${PLUGIN_MARKER}: ${name ?? 'any (the first argument)'} (written by kubewire cni install)
unset NODE_EXTRA_CA_CERTS
exec '${nodePath}' '${bundlePath}' ${name ?? ''}${name ? ' ' : ''}"$@"
`;
}

export interface InstallOptions {
  dir: string;
  bundlePath?: string;
  nodePath?: string;
  /**
   * The shim executable to install as each plugin; false: wrapper scripts (a Node.js start
   * per call). Default: the built shim where there is one, else wrapper scripts.
   */
  shim?: string | false;
  /** The plugin server's socket the shims use; undefined: none (they run the plugins themselves). */
  socket?: string;
}

/** A file that cannot be written, said in one line (the directory and why). */
export class InstallError extends Error {
  override name = 'InstallError';
}

/** Installs the plugins into `opts.dir`; returns the plugin paths. */
export function installPlugins(opts: InstallOptions): string[] {
  const dir = resolve(opts.dir);
  return writing(dir, () => {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const bundleTarget = join(dir, BUNDLE);
    replace(bundleTarget, (tmp) => copyFileSync(opts.bundlePath ?? defaultBundlePath(), tmp), 0o644);
    const nodePath = opts.nodePath ?? process.execPath;
    replace(join(dir, SHIM_FALLBACK), (tmp) => writeFileSync(tmp, wrapperScript(undefined, nodePath, bundleTarget)), 0o755);
    const shim = opts.shim === false ? undefined : (opts.shim ?? builtShimPath());
    if (opts.shim && !existsSync(opts.shim)) throw new InstallError(`the CNI shim ${opts.shim} does not exist (npm install builds it with node-gyp)`);
    const written: string[] = [];
    for (const name of PLUGIN_NAMES) {
      const target = join(dir, name);
      replace(target, (tmp) => (shim ? copyFileSync(shim, tmp) : writeFileSync(tmp, wrapperScript(name, nodePath, bundleTarget))), 0o755);
      written.push(target);
    }
    const link = join(dir, SHIM_SOCKET_LINK);
    if (opts.socket) replace(link, (tmp) => symlinkSync(resolve(opts.socket!), tmp));
    else rmSync(link, { force: true });
    return written;
  });
}

/** Writes `target` through a temporary file beside it and a rename. */
function replace(target: string, write: (tmp: string) => void, mode?: number): void {
  const tmp = `${target}.kubewire-tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  try {
    write(tmp);
    if (mode !== undefined) chmodSync(tmp, mode);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Runs `fn`, turning a refusal of the filesystem into one line that names the directory. */
function writing<T>(dir: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why: Record<string, string> = { EACCES: 'permission denied', EPERM: 'operation not permitted', EROFS: 'read-only file system', ENOTDIR: 'a path component is not a directory', ENOSPC: 'no space left on device', EEXIST: 'a file is in the way' };
    if (err.code && why[err.code]) throw new InstallError(`cannot write into ${dir}: ${why[err.code]}`);
    throw e;
  }
}

export interface ConflistOptions {
  /** The node's podCIDRs (Node.spec.podCIDRs), one per family. */
  podCIDRs: string[];
  /** bridge (flannel's shape: cni0, the pods' gateway) or ptp (kindnet's: a routed pair per pod). */
  plugin: 'bridge' | 'ptp';
  portmap: boolean;
  mtu?: number;
  /** Masquerade pod traffic leaving the pod network (off: the node or kube-proxy does it). */
  ipMasq?: boolean;
  /** host-local's state (default /var/lib/cni/networks; kindnet uses /run/cni-ipam-state). */
  dataDir?: string;
}

export const CONFLIST_NAME = '10-kubewire.conflist';
export const LOOPBACK_NAME = '99-loopback.conf';
const NETWORK = 'kubewire';

/** The node's network configuration, as flannel's 10-flannel.conflist and kindnet's are (pure). */
export function nodeNetworkConflist(o: ConflistOptions): object {
  const v6 = (cidr: string): boolean => cidr.includes(':');
  const ranges = o.podCIDRs.map((subnet) => [{ subnet }]);
  const ipam: Record<string, unknown> = { type: 'host-local', ranges, ...(o.dataDir ? { dataDir: o.dataDir } : {}) };
  const main: Record<string, unknown> =
    o.plugin === 'bridge'
      ? { type: 'bridge', bridge: 'cni0', isGateway: true, isDefaultGateway: true, hairpinMode: true, ipMasq: o.ipMasq ?? false }
      : { type: 'ptp', ipMasq: o.ipMasq ?? false };
  if (o.mtu) main.mtu = o.mtu;
  // ptp has no gateway of its own to default to: the routes come from IPAM, as kindnet's do.
  if (o.plugin === 'ptp') ipam.routes = o.podCIDRs.map((c) => ({ dst: v6(c) ? '::/0' : '0.0.0.0/0' }));
  main.ipam = ipam;
  return {
    cniVersion: '1.0.0',
    name: NETWORK,
    plugins: [main, ...(o.portmap ? [{ type: 'portmap', capabilities: { portMappings: true } }] : [])],
  };
}

/** The loopback network CRI-O ships as 99-loopback.conf (containerd sets lo up itself). */
export function loopbackConf(): object {
  return { cniVersion: '1.0.0', name: 'cni-loopback', type: 'loopback' };
}

/** Makes `dir` (and its parents) and checks it can be written: before anything else is installed. */
export function ensureWritableDir(dir: string): void {
  const abs = resolve(dir);
  writing(abs, () => {
    mkdirSync(abs, { recursive: true, mode: 0o755 });
    accessSync(abs, constants.W_OK);
  });
}

/** Writes the node's conflist (and loopback's, if asked) into `confDir`; returns the paths. */
export function installConflist(confDir: string, conflist: object, loopback = false): string[] {
  const dir = resolve(confDir);
  return writing(dir, () => {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const out = [join(dir, CONFLIST_NAME)];
    writeConfListAtomically(out[0]!, conflist);
    if (loopback) {
      out.push(join(dir, LOOPBACK_NAME));
      writeConfListAtomically(out[1]!, loopbackConf());
    }
    return out;
  });
}
