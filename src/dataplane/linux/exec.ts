// Runs the system's network tools (ip, iptables-restore, nft, sysctl) without a shell:
// arguments are passed as a vector, so no name ever reaches a shell. Where the native helper
// is built they are started with posix_spawn, inside their namespace without nsenter: a
// fork of the daemon (what child_process does) costs it 2-6 ms of CPU per tool, and a
// pod's start runs several.

import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { toolPath } from '../../supervisor/supervisor.ts';
import { optionalNetnsAddon, type NetnsAddon } from './native.ts';

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

/** Prefixes argv so that it runs in the network namespace at `netns`. */
export function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['nsenter', `--net=${netns}`, '--', ...argv] : argv;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<string> {
  const addon = optionalNetnsAddon();
  return addon ? spawnNative(addon, argv, opts) : spawnNode(argv, opts);
}

/** A tool started by the native helper (posix_spawn), reaped by it. */
export function spawnNative(addon: NetnsAddon, argv: string[], opts: RunOptions): Promise<string> {
  const file = toolPath(argv[0]!);
  const full = [file, ...argv.slice(1)];
  const shown = inNetns(opts.netns, argv);
  return new Promise((resolve, reject) => {
    let child: ReturnType<NetnsAddon['spawn']>;
    try {
      child = addon.spawn(file, full, opts.netns ?? '');
    } catch (e) {
      reject(new CommandError(shown, null, (e as Error).message, ''));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let open = 2;
    const collect = (fd: number, into: Buffer[]) => {
      const pipe = new Socket({ fd, readable: true, writable: false });
      pipe.on('data', (b: Buffer) => into.push(b));
      pipe.on('error', () => {}); // a read error ends the pipe like EOF; the exit status tells
      pipe.on('close', () => {
        if (--open === 0) reap(0);
      });
    };
    collect(child.stdout, out);
    collect(child.stderr, err);
    const stdin = new Socket({ fd: child.stdin, readable: false, writable: true });
    stdin.on('error', () => {}); // the command may exit before reading all input
    stdin.end(opts.input ?? '');
    // Its pipes close as it exits; reaping may have to wait a moment after that.
    const reap = (attempt: number) => {
      const ended = addon.waitPid(child.pid);
      if (!ended) {
        setTimeout(reap, Math.min(50, 2 ** attempt), attempt + 1);
        return;
      }
      const stdout = Buffer.concat(out).toString('utf8');
      if (ended.code === 0) resolve(stdout);
      else reject(new CommandError(shown, ended.code, Buffer.concat(err).toString('utf8') || (ended.signal ? `killed by signal ${ended.signal}` : ''), stdout));
    };
  });
}

/** A tool started by child_process (fork + exec), through nsenter for another namespace. */
export function spawnNode(argv: string[], opts: RunOptions): Promise<string> {
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
