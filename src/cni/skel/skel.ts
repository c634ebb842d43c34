// The skel turns a table of command handlers into a spec-compliant CNI executable:
// environment and stdin in, a result (or the spec's error JSON) on stdout, logs on stderr.
// Its I/O is injected so tests run plugins in-process.

import { CniError, ErrorCode, asCniError } from '../spec/errors.ts';
import {
  CURRENT_VERSION,
  SUPPORTED_VERSIONS,
  atLeast,
  convertResult,
  isSupportedVersion,
  normalizeResult,
  type NetConf,
  type Result,
} from '../spec/types.ts';
import { validateContainerID, validateIfName, validateNetnsPath, validateNetworkName } from '../spec/names.ts';

import type { Dataplane } from '../../dataplane/port.ts';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

export interface CmdArgs {
  command: Command;
  containerID: string;
  /** Path of the pod's network namespace; empty on a DEL whose namespace is gone. */
  netns: string;
  ifName: string;
  /** CNI_ARGS as key/value pairs. */
  args: Map<string, string>;
  path: string[];
  conf: NetConf;
  /** The raw configuration bytes, forwarded unchanged to delegated IPAM plugins. */
  stdin: Buffer;
  env: Record<string, string | undefined>;
  log: (message: string) => void;
  /**
   * The namespace the plugin treats as the host, when it runs in-process on behalf of a
   * runtime serving a lab node; undefined for an executable, whose host is its own namespace.
   */
  hostNetns?: string;
  /** How the plugin reaches the kernel (the host's, or a fake in tests). */
  dataplane: Dataplane;
}

export interface PluginFuncs {
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check?(args: CmdArgs): Promise<void>;
  status?(args: CmdArgs): Promise<void>;
  gc?(args: CmdArgs): Promise<void>;
}

export interface PluginIO {
  env: Record<string, string | undefined>;
  stdin: Buffer;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const REQUIRED_ENV: Record<Command, string[]> = {
  ADD: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_COMMAND', 'CNI_PATH'],
  STATUS: ['CNI_COMMAND', 'CNI_PATH'],
  VERSION: ['CNI_COMMAND'],
};

/** The first version of the spec that knows each command. */
const MIN_VERSION: Partial<Record<Command, string>> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

/** Runs one plugin invocation and returns its exit code. */
export async function runPlugin(name: string, funcs: PluginFuncs, io: PluginIO, dataplane: Dataplane, hostNetns?: string): Promise<number> {
  const rawCommand = io.env.CNI_COMMAND;
  if (!rawCommand) {
    io.stderr(`CNI ${name} plugin (kubewire) — supported CNI versions: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    return 0;
  }
  let replyVersion = CURRENT_VERSION;
  try {
    const command = parseCommand(rawCommand);
    if (command === 'VERSION') {
      const asked = versionOfStdin(io.stdin);
      io.stdout(JSON.stringify({ cniVersion: asked ?? CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS }));
      return 0;
    }
    checkEnvironment(command, io.env);
    const conf = parseConf(io.stdin);
    replyVersion = conf.cniVersion;
    const min = MIN_VERSION[command];
    if (min && !atLeast(conf.cniVersion, min)) {
      throw new CniError(ErrorCode.IncompatibleVersion, `cniVersion ${conf.cniVersion} does not support the ${command} command (needs ${min} or later)`);
    }
    const args: CmdArgs = {
      command,
      containerID: io.env.CNI_CONTAINERID ?? '',
      netns: io.env.CNI_NETNS ?? '',
      ifName: io.env.CNI_IFNAME ?? '',
      args: parseCniArgs(io.env.CNI_ARGS ?? ''),
      path: (io.env.CNI_PATH ?? '').split(':').filter(Boolean),
      conf,
      stdin: io.stdin,
      env: io.env,
      log: (m) => io.stderr(`${name}: ${m}\n`),
      hostNetns,
      dataplane,
    };
    switch (command) {
      case 'ADD': {
        const result = await funcs.add(args);
        io.stdout(JSON.stringify(convertResult(result, conf.cniVersion)));
        return 0;
      }
      case 'DEL':
        await funcs.del(args);
        return 0;
      case 'CHECK':
        await funcs.check?.(args);
        return 0;
      case 'STATUS':
        await funcs.status?.(args);
        return 0;
      case 'GC':
        await funcs.gc?.(args);
        return 0;
    }
  } catch (e) {
    const err = asCniError(e);
    io.stdout(JSON.stringify(err.toJSON(replyVersion)));
    // An unexpected exception (not a CniError we raised on purpose) is a bug: keep its stack in the log.
    if (!(e instanceof CniError) && e instanceof Error && e.stack) io.stderr(`${name}: ${e.stack}\n`);
    return 1;
  }
}

function parseCommand(raw: string): Command {
  if (raw in REQUIRED_ENV) return raw as Command;
  throw new CniError(ErrorCode.InvalidEnvironment, `CNI_COMMAND ${JSON.stringify(raw)} is not one of ${Object.keys(REQUIRED_ENV).join(', ')}`);
}

function checkEnvironment(command: Command, env: Record<string, string | undefined>): void {
  const missing = REQUIRED_ENV[command].filter((k) => !env[k]);
  if (missing.length) {
    throw new CniError(ErrorCode.InvalidEnvironment, `required environment variables missing: ${missing.join(', ')}`);
  }
  if (env.CNI_CONTAINERID !== undefined && REQUIRED_ENV[command].includes('CNI_CONTAINERID')) {
    const problem = validateContainerID(env.CNI_CONTAINERID);
    if (problem) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_CONTAINERID ${problem}`);
  }
  if (env.CNI_NETNS && (command === 'ADD' || command === 'CHECK' || command === 'DEL')) {
    const problem = validateNetnsPath(env.CNI_NETNS);
    if (problem) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_NETNS ${problem}`);
  }
  if (env.CNI_IFNAME !== undefined && REQUIRED_ENV[command].includes('CNI_IFNAME')) {
    const problem = validateIfName(env.CNI_IFNAME);
    if (problem) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_IFNAME ${problem}`);
  }
}

function versionOfStdin(stdin: Buffer): string | undefined {
  if (!stdin.length) return undefined;
  try {
    const v = (JSON.parse(stdin.toString('utf8')) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' && v ? v : undefined;
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, 'the configuration on stdin is not valid JSON');
  }
}

export function parseConf(stdin: Buffer): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin.toString('utf8'));
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, 'the configuration on stdin is not valid JSON', (e as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(ErrorCode.DecodingFailure, 'the configuration on stdin is not a JSON object');
  }
  const conf = raw as Record<string, unknown>;
  if (typeof conf.cniVersion !== 'string' || !conf.cniVersion) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, 'field "cniVersion" is required and must be a string');
  }
  if (!isSupportedVersion(conf.cniVersion)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `cniVersion ${JSON.stringify(conf.cniVersion)} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  }
  if (typeof conf.name !== 'string') throw new CniError(ErrorCode.InvalidNetworkConfig, 'field "name" is required and must be a string');
  const nameProblem = validateNetworkName(conf.name);
  if (nameProblem) throw new CniError(ErrorCode.InvalidNetworkConfig, `field "name" ${nameProblem}`);
  if (typeof conf.type !== 'string' || !conf.type) throw new CniError(ErrorCode.InvalidNetworkConfig, 'field "type" is required and must be a string');
  if (conf.prevResult !== undefined) conf.prevResult = normalizeResult(conf.prevResult, 'prevResult');
  for (const key of ['runtimeConfig', 'args', 'ipam'] as const) {
    const v = conf[key];
    if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `field "${key}" must be an object`);
    }
  }
  return conf as NetConf;
}

/** CNI_ARGS: "K1=V1;K2=V2" (deprecated by the spec, still sent by containerd). */
export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of text.split(';')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(ErrorCode.InvalidEnvironment, `CNI_ARGS entry ${JSON.stringify(pair)} is not KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}
