// Runs the system's network tools (ip, iptables-restore, nft, sysctl) without a shell:
// arguments are passed as a vector, so no name ever reaches a shell. Where the native code
// is built they are started by kubewire-spawner (spawner.ts), else by the native helper's
// posix_spawn, inside their namespace without nsenter: a fork of the daemon (what
// child_process does) costs it 2-6 ms of CPU per tool, and a pod's start runs several.

import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { toolPath } from '../../supervisor/supervisor.ts';
import { optionalNetnsAddon, type NetnsAddon } from './native.ts';
import { runBySpawner, type Ran } from './spawner.ts';

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

/** A way to run the tools somewhere else: the kernel of a cluster of its own, for a CLI on its host. */
export type ToolRunner = (argv: string[], opts: RunOptions) => Promise<string>;

let elsewhere: ToolRunner | undefined;

/** From now on this process's tools run through `runner` (undefined: here again); the namespaces named are that kernel's. */
export function runToolsThrough(runner: ToolRunner | undefined): void {
  elsewhere = runner;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<string> {
  if (elsewhere) return elsewhere(argv, opts);
  const spawned = spawnBySpawner(argv, opts);
  if (spawned) return spawned;
  const addon = optionalNetnsAddon();
  return addon ? spawnNative(addon, argv, opts) : spawnNode(argv, opts);
}

/** A tool started by kubewire-spawner (spawner.ts), undefined where it is not built. */
export function spawnBySpawner(argv: string[], opts: RunOptions): Promise<string> | undefined {
  const file = toolPath(argv[0]!);
  const ran = runBySpawner(file, [file, ...argv.slice(1)], opts.netns ?? '', opts.input ?? '');
  return ran && outcome(ran, inNetns(opts.netns, argv));
}

/** A tool's stdout when it exited 0, else a CommandError (`shown`: its command line as a user would type it). */
async function outcome(running: Promise<Ran> | (() => Promise<Ran>), shown: string[]): Promise<string> {
  let ended: Ran;
  try {
    ended = await (typeof running === 'function' ? running() : running);
  } catch (e) {
    throw new CommandError(shown, null, (e as Error).message, '');
  }
  const stdout = ended.stdout.toString('utf8');
  if (ended.code === 0) return stdout;
  throw new CommandError(shown, ended.code, ended.stderr.toString('utf8') || (ended.signal ? `killed by signal ${ended.signal}` : ''), stdout);
}

/**
 * A tool started by the native helper (posix_spawn) on a thread of its own, which also feeds
 * its input, reads its output and reaps it: the event loop does nothing per tool but settle
 * a promise (under load, the vfork's wait for the child's exec alone took 20 ms). Where
 * kubewire-spawner is built, run() prefers it: this still maps the child's stack in this
 * process's address space and shares it until the exec.
 */
export function spawnNative(addon: NetnsAddon, argv: string[], opts: RunOptions): Promise<string> {
  const file = toolPath(argv[0]!);
  return outcome(() => addon.promises.run(file, [file, ...argv.slice(1)], opts.netns ?? '', opts.input ?? ''), inNetns(opts.netns, argv));
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

/**
 * A long-running tool (an observer such as `nft monitor` or `tcpdump`): its output is kept
 * until `stop`, which sends SIGINT (both flush on it) and waits for it to end.
 */
export async function startMonitor(argv: string[], netns: string | undefined): Promise<{ until(text: string, timeoutMs: number): Promise<void>; stop(): Promise<Buffer> }> {
  const out: Buffer[] = [];
  let seen = ''; // stdout and stderr as text, for `until`
  let ended = false;
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  const shown = inNetns(netns, argv);
  let pid: number;
  let exited: Promise<string>;
  const addon = optionalNetnsAddon();
  const onData = (into: Buffer[] | undefined) => (b: Buffer) => {
    into?.push(b);
    seen += b.toString('latin1');
    wake();
  };
  if (addon) {
    const file = toolPath(argv[0]!);
    const child = await addon.promises.spawn(file, [file, ...argv.slice(1)], netns ?? '');
    pid = child.pid;
    new Socket({ fd: child.stdin, readable: false, writable: true }).on('error', () => {}).end();
    let open = 2;
    let closed!: () => void;
    const pipesClosed = new Promise<void>((r) => (closed = r));
    for (const [fd, into] of [[child.stdout, out], [child.stderr, undefined]] as const) {
      const pipe = new Socket({ fd, readable: true, writable: false });
      pipe.on('data', onData(into));
      pipe.on('error', () => {});
      pipe.on('close', () => --open === 0 && closed());
    }
    exited = pipesClosed.then(async () => {
      for (let i = 0; ; i++) {
        const status = addon.waitPid(pid);
        if (status) return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
        await new Promise((r) => setTimeout(r, Math.min(50, 2 ** i)));
      }
    });
  } else {
    const child = spawn(toolPath(shown[0]!), shown.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    pid = child.pid ?? -1;
    child.stdout.on('data', onData(out));
    child.stderr.on('data', onData(undefined));
    exited = new Promise((r) => child.on('close', (code, signal) => r(signal ? `signal ${signal}` : `exit code ${code}`)));
  }
  void exited.then(() => {
    ended = true;
    wake();
  });
  return {
    until(text, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new CommandError(shown, null, `did not print ${JSON.stringify(text)} within ${timeoutMs} ms: ${seen.slice(-300)}`, '')), timeoutMs);
        const check = () => {
          if (seen.includes(text)) done();
          else if (ended) done(new CommandError(shown, null, seen.slice(-300) || 'ended before it was ready', ''));
        };
        const done = (e?: Error) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (e) reject(e);
          else resolve();
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (!ended) {
        try {
          process.kill(pid, 'SIGINT');
        } catch {
          // gone already
        }
      }
      await exited;
      return Buffer.concat(out);
    },
  };
}
