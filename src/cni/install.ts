// `kubewire cni install --dir DIR`: writes the plugin executables into DIR, as CNI
// installers do for /opt/cni/bin. One bundle holds all plugins; each plugin is a tiny
// wrapper that execs it, so runtimes find them by name in CNI_PATH.

import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PLUGIN_MARKER } from './invoke/marker.ts';

export const PLUGIN_NAMES = ['bridge', 'host-local', 'loopback', 'portmap', 'ptp', 'vpc'] as const;
const BUNDLE = 'kubewire-cni.cjs';

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

export function wrapperScript(name: string, nodePath: string, bundlePath: string): string {
  for (const p of [nodePath, bundlePath]) {
    if (p.includes("'")) throw new Error(`path ${p} contains a single quote; choose another directory`);
  }
  // NODE_EXTRA_CA_CERTS makes every node start load a CA file: plugins do no TLS, and
  // dropping it halves their start-up time.
  return `#!/bin/sh
# ${PLUGIN_MARKER}: ${name} (written by kubewire cni install)
unset NODE_EXTRA_CA_CERTS
exec '${nodePath}' '${bundlePath}' ${name} "$@"
`;
}

export interface InstallOptions {
  dir: string;
  bundlePath?: string;
  nodePath?: string;
}

/** Installs the plugins; each file is replaced atomically so running callers never see half of one. */
export function installPlugins(opts: InstallOptions): string[] {
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const bundleTarget = join(dir, BUNDLE);
  copyFileSync(opts.bundlePath ?? defaultBundlePath(), `${bundleTarget}.tmp`);
  renameSync(`${bundleTarget}.tmp`, bundleTarget);
  const written: string[] = [];
  for (const name of PLUGIN_NAMES) {
    const target = join(dir, name);
    writeFileSync(`${target}.tmp`, wrapperScript(name, opts.nodePath ?? process.execPath, bundleTarget));
    chmodSync(`${target}.tmp`, 0o755);
    renameSync(`${target}.tmp`, target);
    written.push(target);
  }
  return written;
}
