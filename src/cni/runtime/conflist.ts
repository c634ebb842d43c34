// Network configuration lists (.conflist; .conf and .json single configs are wrapped) and
// how the runtime picks one: the lexicographically first file of the directory, as libcni
// and containerd do. Writing one is atomic, so a reader never sees half a file.

import { readdirSync, readFileSync } from 'node:fs';
import { writeJsonAtomically } from '../../state/files.ts';
import { join } from 'node:path';
import { CniError, ErrorCode } from '../spec/errors.ts';
import { compareVersions, isSupportedVersion, SUPPORTED_VERSIONS } from '../spec/types.ts';
import { validateNetworkName } from '../spec/names.ts';

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  name: string;
  /** The version the runtime speaks with every plugin: the highest supported of cniVersion ∪ cniVersions. */
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  plugins: PluginConf[];
  /** The file's bytes, kept for the result cache. */
  bytes: Buffer;
  source: string;
}

function invalid(source: string, msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `${source}: ${msg}`);
}

export function negotiateVersion(cniVersion: unknown, cniVersions: unknown, source: string): string {
  const offered: string[] = [];
  if (typeof cniVersion === 'string' && cniVersion) offered.push(cniVersion);
  if (cniVersions !== undefined) {
    if (!Array.isArray(cniVersions) || cniVersions.some((v) => typeof v !== 'string')) throw invalid(source, '"cniVersions" must be a list of version strings');
    offered.push(...(cniVersions as string[]));
  }
  if (!offered.length) throw invalid(source, '"cniVersion" is required');
  const usable = offered.filter(isSupportedVersion).sort(compareVersions);
  if (!usable.length) {
    throw new CniError(ErrorCode.IncompatibleVersion, `${source}: none of the versions ${offered.join(', ')} is supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  }
  return usable[usable.length - 1]!;
}

export function parseConfList(bytes: Buffer, source: string): NetworkConfigList {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `${source}: not valid JSON`, (e as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CniError(ErrorCode.DecodingFailure, `${source}: not a JSON object`);
  const conf = raw as Record<string, unknown>;
  // A single plugin configuration (.conf) becomes a list of one, as ConfListFromConf does.
  const single = conf.plugins === undefined && typeof conf.type === 'string';
  const { cniVersion, cniVersions, name, disableCheck, disableGC } = conf;
  const pluginsRaw = single ? [conf] : conf.plugins;
  if (typeof name !== 'string') throw invalid(source, '"name" is required');
  const nameProblem = validateNetworkName(name);
  if (nameProblem) throw invalid(source, `"name" ${nameProblem}`);
  if (!Array.isArray(pluginsRaw) || !pluginsRaw.length) throw invalid(source, '"plugins" must be a non-empty list');
  const plugins = pluginsRaw.map((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw invalid(source, `plugins[${i}] must be an object`);
    const plugin = { ...(p as Record<string, unknown>) };
    if (single) {
      delete plugin.cniVersion;
      delete plugin.cniVersions;
      delete plugin.name;
    }
    if (typeof plugin.type !== 'string' || !plugin.type) throw invalid(source, `plugins[${i}].type is required`);
    if (plugin.capabilities !== undefined && (typeof plugin.capabilities !== 'object' || plugin.capabilities === null)) {
      throw invalid(source, `plugins[${i}].capabilities must be an object`);
    }
    return plugin as PluginConf;
  });
  for (const [key, v] of Object.entries({ disableCheck, disableGC })) {
    if (v !== undefined && typeof v !== 'boolean') throw invalid(source, `"${key}" must be true or false`);
  }
  return {
    name,
    cniVersion: negotiateVersion(cniVersion, cniVersions, source),
    disableCheck: disableCheck === true,
    disableGC: disableGC === true,
    plugins,
    bytes,
    source,
  };
}

const CONF_EXTENSIONS = ['.conflist', '.conf', '.json'];

/** The network of a CNI config directory: its lexicographically first configuration file. */
export function loadDefaultConfList(dir: string): NetworkConfigList {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => CONF_EXTENSIONS.some((ext) => f.endsWith(ext))).sort();
  } catch (e) {
    throw new CniError(ErrorCode.IOFailure, `cannot read CNI config directory ${dir}: ${(e as Error).message}`);
  }
  if (!files.length) throw new CniError(ErrorCode.IOFailure, `cni plugin not initialized: no network configuration in ${dir}`);
  const path = join(dir, files[0]!);
  return parseConfList(readFileSync(path), path);
}

/** Writes a conflist so that runtimes see the old file or the new one, never a part ("cni plugin not initialized" otherwise). */
export function writeConfListAtomically(path: string, conflist: object): void {
  writeJsonAtomically(path, conflist);
}
