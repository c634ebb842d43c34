// Runs the system's network tools (ip, iptables-restore, nft, sysctl) without a shell:
// arguments are passed as a vector, so no name ever reaches a shell.

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`${argv.join(' ')}: ${stderr.trim() || `exit code ${exitCode}`}`);
  }
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Run inside this network namespace (a path such as /var/run/netns/NAME). */
  netns?: string;
}

const resolved = new Map<string, string>();

/** The absolute path of a tool, found once in PATH (spawn would otherwise probe every PATH entry each time). */
export function toolPath(name: string): string {
  if (name.includes('/')) return name;
  let path = resolved.get(name);
  if (!path) {
    path = name;
    for (const dir of (process.env.PATH || '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        path = join(dir, name);
        break;
      } catch {
        // not here
      }
    }
    resolved.set(name, path);
  }
  return path;
}

/** Prefixes argv so that it runs in the network namespace at `netns`. */
export function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['nsenter', `--net=${netns}`, '--', ...argv] : argv;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<string> {
  const full = inNetns(opts.netns, argv);
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath(full[0]!), full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new CommandError(full, null, e.message, '')));
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) resolve(stdout);
      else reject(new CommandError(full, code, Buffer.concat(err).toString('utf8'), stdout));
    });
    child.stdin.on('error', () => {}); // the command may exit before reading all input
    child.stdin.end(opts.input ?? '');
  });
}
