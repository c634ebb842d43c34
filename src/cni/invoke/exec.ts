// Executing a plugin binary the way libcni's invoke package does: CNI_* environment, the
// configuration on stdin, the result (or error JSON) from stdout.

import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { runCaptured } from '../../supervisor/supervisor.ts';
import { CniError, ErrorCode } from '../spec/errors.ts';

export interface ExecRequest {
  pluginPath: string;
  env: Record<string, string>;
  stdin: string | Buffer;
  /** Run the plugin inside this network namespace (the "host" of a lab node), by path. */
  hostNetns?: string;
}

export function findInPath(type: string, paths: string[]): string {
  if (!type || type.includes('/') || type === '.' || type === '..') {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `plugin type ${JSON.stringify(type)} is not a valid plugin name`);
  }
  for (const dir of paths) {
    const candidate = join(dir, type);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to find plugin ${JSON.stringify(type)} in path [${paths.join(' ')}]`);
}

const TEXT_FILE_BUSY_RETRIES = 5;

/** Runs the plugin; resolves with its parsed stdout (undefined when empty), rejects with a CniError. */
export async function execPlugin(req: ExecRequest): Promise<unknown> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await execOnce(req);
    } catch (e) {
      // A freshly written plugin may still be open for writing elsewhere (libcni retries too).
      if ((e as NodeJS.ErrnoException).code === 'ETXTBSY' && attempt < TEXT_FILE_BUSY_RETRIES) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      throw e;
    }
  }
}

async function execOnce(req: ExecRequest): Promise<unknown> {
  const r = await runCaptured([req.pluginPath], { netns: req.hostNetns, env: req.env, input: req.stdin });
  return pluginOutput(req.pluginPath, r.code, r.signal, r.stdout, r.stderr);
}

/** A plugin's answer: its parsed result (undefined when it printed nothing), or its error as a CniError. */
export function pluginOutput(path: string, code: number | null, signal: NodeJS.Signals | null, rawStdout: string, rawStderr: string): unknown {
  const stdout = rawStdout.trim();
  const stderr = rawStderr.trim();
  if (code !== 0) throw pluginFailure(path, code, signal, stdout, stderr);
  if (!stdout) return undefined;
  try {
    return JSON.parse(stdout);
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `plugin ${path} printed a result that is not JSON`, stdout.slice(0, 200));
  }
}

function pluginFailure(path: string, code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string): CniError {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number') return new CniError(e.code, String(e.msg ?? ''), typeof e.details === 'string' ? e.details : '');
  } catch {
    // not an error object: fall back to stderr, as libcni does
  }
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  return new CniError(ErrorCode.Internal, `plugin ${path} ${how}`, (stderr || stdout).slice(0, 500));
}
