// The one place kubewire starts and stops processes other than network tools (those go
// through the dataplane): the daemon, the workload host, ingress controllers, containers'
// commands, CNI plugin executables, `kubewire exec`'s command. Long-lived ones start
// detached (their own process group, stdio appended to a log file) so that they outlive a
// crash of whoever started them; one inside a network namespace is exec'd by nsenter, so its
// pid is its own. What identifies a process across restarts is its pid together with its
// start time (/proc/PID/stat field 22): a pid reused by another process is not taken for it.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export type { ChildProcess };

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

export interface ProcessRecord {
  pid: number;
  startTicks: string;
  startedAt: string;
}

/** /proc/PID/stat from its third field on (state, ppid, ...); undefined when the process is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The process's start time in clock ticks since boot; undefined when it is gone or a zombie. */
export function startTicks(pid: number): string | undefined {
  const fields = statFields(pid);
  if (!fields || fields[0] === 'Z') return undefined; // a zombie has finished
  return fields[19];
}

/** The process's parent; undefined when it is gone. */
export function parentPid(pid: number): number | undefined {
  const ppid = statFields(pid)?.[1];
  return ppid === undefined ? undefined : Number(ppid);
}

/** Whether the recorded process still runs (a bare pid: whether some process has it). */
export function isAlive(target: ProcessRecord | number): boolean {
  return typeof target === 'number' ? startTicks(target) !== undefined : startTicks(target.pid) === target.startTicks;
}

/**
 * What a pod's processes see of names: `dir`'s resolv.conf, hosts and hostname bound over
 * /etc's, and `hostname`, in mount and UTS namespaces of the process's own (the host's stay
 * untouched; a file /etc lacks is left out).
 */
export interface PodView {
  dir: string;
  hostname: string;
}

const VIEW_SCRIPT = 'd=$1; h=$2; shift 2; for f in resolv.conf hosts hostname; do [ -e "/etc/$f" ] || continue; mount --bind "$d/$f" "/etc/$f" || exit 126; done; hostname "$h" || exit 126; exec "$@"';

/** argv run inside the network namespace at `netns`, with a pod's view of names if given (nsenter, unshare and sh exec in turn: the pid stays the command's). */
function inNamespace(argv: string[], netns: string | undefined, view?: PodView): string[] {
  const inner = view ? [toolPath('unshare'), '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', '-c', VIEW_SCRIPT, 'pod-view', view.dir, view.hostname, ...argv] : argv;
  return netns ? [toolPath('nsenter'), `--net=${netns}`, '--', ...inner] : inner;
}

export interface DetachedSpec {
  argv: string[];
  /** The whole environment (nothing is inherited). */
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run inside this network namespace (a path). */
  netns?: string;
  /** A pod's view of names (its resolv.conf, hosts, hostname). */
  view?: PodView;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** The user and group the command runs as (setpriv drops to them after the namespaces are entered; no supplementary groups). */
  user?: { uid: number; gid: number };
}

/** argv run as `user` (the pod view's mounts are made as root first). */
export function asUser(argv: string[], user: DetachedSpec['user']): string[] {
  return user ? [toolPath('setpriv'), `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', ...argv] : argv;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Starts a process that outlives this one; resolves once it runs. `onExit` hears how it
 * ended, while this process lives to see it.
 */
export function startDetached(spec: DetachedSpec, onExit: (status: ExitStatus) => void = () => {}): Promise<ProcessRecord> {
  mkdirSync(dirname(spec.logFile), { recursive: true });
  const out = openSync(spec.logFile, 'a');
  try {
    const argv = inNamespace(asUser(spec.argv, spec.user), spec.netns, spec.view);
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', out, out], env: spec.env, cwd: spec.cwd || '/' });
    return new Promise((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`cannot start ${JSON.stringify(spec.argv[0])}: ${e.message}`)));
      child.once('spawn', () => {
        child.unref();
        child.once('exit', (code, signal) => onExit({ code, signal }));
        const pid = child.pid!;
        resolve({ pid, startTicks: startTicks(pid) ?? '', startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') });
      });
    });
  } finally {
    closeSync(out);
  }
}

/** A process this user may not signal (another user's: root's cluster, seen by an ordinary user). */
export class PermissionDenied extends Error {
  override name = 'PermissionDenied';
}

/**
 * SIGTERM to the process's group (a detached process leads its own; else to the process),
 * SIGKILL after `graceMs`; resolves once it is gone. A process this user may not signal is an
 * error at once (never a wait for something that cannot happen); one that outlives SIGKILL by
 * `killWaitMs` (stuck in the kernel, uninterruptible) is an error too.
 */
export async function stopProcess(target: ProcessRecord | number, graceMs: number, killWaitMs = 10_000): Promise<void> {
  const pid = typeof target === 'number' ? target : target.pid;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EPERM') throw new PermissionDenied(`permission denied: process ${pid} is not yours to stop (${processOwner(pid)}'s)`);
        // ESRCH: gone
      }
    }
  };
  if (!isAlive(target)) return;
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(target) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (isAlive(target)) {
    signal('SIGKILL');
    const killDeadline = Date.now() + killWaitMs;
    while (isAlive(target)) {
      if (Date.now() > killDeadline) throw new Error(`process ${pid} did not end ${killWaitMs / 1000} s after SIGKILL (stuck in the kernel?)`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** The user name (or uid) owning a process, for messages. */
function processOwner(pid: number): string {
  try {
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    if (uid === undefined) return 'another user';
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.split(':')[2] === uid);
    return line ? line.split(':')[0]! : `uid ${uid}`;
  } catch {
    return 'another user';
  }
}

export interface AttachedOptions {
  netns?: string;
  view?: PodView;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command on this terminal (stdio inherited), inside `netns` if given; resolves with its exit code (128 + n for signal n... as a shell reports it, 1 when it could not start). */
export function runAttached(argv: string[], opts: AttachedOptions = {}): Promise<number> {
  const full = inNamespace(argv, opts.netns, opts.view);
  const child = spawn(full[0]!, full.slice(1), { stdio: 'inherit', env: opts.env ?? process.env });
  return new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`error: ${e.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

export interface CapturedOptions {
  netns?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Each chunk of stdout as it comes (the output is still collected). */
  onStdout?: (chunk: string) => void;
  /** stderr goes to this process's stderr instead of being collected. */
  inheritStderr?: boolean;
}

export interface Captured extends ExitStatus {
  stdout: string;
  stderr: string;
}

/** Runs a command to its end with its output collected; rejects only when it cannot start (ETXTBSY among them, with its code). */
export function runCaptured(argv: string[], opts: CapturedOptions = {}): Promise<Captured> {
  const full = inNamespace(argv, opts.netns);
  const child = spawn(full[0]!, full.slice(1), { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', opts.inheritStderr ? 'inherit' : 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => {
    out.push(b);
    opts.onStdout?.(b.toString('utf8'));
  });
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  child.stdin!.on('error', () => {}); // the command may exit before reading all input
  child.stdin!.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** Runs a short command to its end, synchronously, its output discarded; throws when it fails. */
export function runQuietSync(argv: string[]): void {
  execFileSync(toolPath(argv[0]!), argv.slice(1), { stdio: 'ignore' });
}

/** A child process kept by its starter (a lab's servers), inside `netns` if given; its stdout piped. */
export function startChild(argv: string[], netns?: string): ChildProcess {
  const full = inNamespace(argv, netns);
  return spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
}

export interface PipedOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** A fourth pipe, the child's fd 3 (stdio[3]), for what it is to do. */
  extraPipe?: boolean;
}

/** A command with its stdin, stdout and stderr piped to its starter, leading its own process group (signals go to all it runs). */
/** A program started with piped stdio inside `netns` (with a pod's view of names if given), leading its own process group. */
export function startPipedIn(argv: string[], opts: PipedOptions & { netns?: string; view?: PodView }): ChildProcess {
  const full = inNamespace(argv, opts.netns, opts.view);
  return spawn(full[0]!, full.slice(1), { stdio: 'pipe', cwd: opts.cwd, env: opts.env, detached: true });
}

export function startPiped(argv: string[], opts: PipedOptions): ChildProcess {
  return spawn(toolPath(argv[0]!), argv.slice(1), { stdio: opts.extraPipe ? ['pipe', 'pipe', 'pipe', 'pipe'] : 'pipe', cwd: opts.cwd, env: opts.env, detached: true });
}
