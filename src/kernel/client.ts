// The CLI's end: a command for a cluster that runs in its own kernel is run there, as it
// was typed, through the kernel host's socket; its output, exit status and interruptions
// travel as frames (frames.ts). `up`, `down` and what needs no cluster stay on the host.

import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { Readable, Writable } from 'node:stream';
import { kernelPaths } from '../state/paths.ts';
import { encodeFrame, forwardedEnv, FrameReader, type Frame } from './frames.ts';

export class KernelError extends Error {}

/** Where the guest keeps the cluster's state: its own tmpfs. */
export const GUEST_STATE_DIR = '/run/kubewire';

export interface KernelRecord {
  kernel: 'uml';
  memMB: number;
  createdAt: string;
  /** The modules its init loads (supervisor/uml.ts clusterModules); all of them when absent. */
  modules?: string[];
}

/** The record of a cluster that runs in its own kernel, or undefined for one on the host's. */
export function clusterKernel(cluster: string): KernelRecord | undefined {
  const path = kernelPaths(cluster).record;
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as KernelRecord;
}

/**
 * Verbs the host runs itself whatever the cluster: `down` stops the kernel; `exec` resolves
 * the pod through the API and has the guest start the program itself (runProgramInKernel), with
 * no kubewire process in there; `kubeconfig` reads the host's copy of the PKI; the rest have no cluster. (`up` of an existing cluster goes
 * in: there it restarts a daemon that died.)
 */
const HOST_VERBS = new Set(['down', 'cni', 'demo', 'help', 'kernel-host', 'exec', 'kubeconfig']);

/** The cluster a command line names with --cluster (undefined when it names none) (pure). */
export function clusterFlag(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') return undefined;
    if (argv[i] === '--cluster') return argv[i + 1];
    if (argv[i]!.startsWith('--cluster=')) return argv[i]!.slice('--cluster='.length);
  }
  return undefined;
}

/**
 * Verbs that only talk to the cluster's API: the host runs them itself, through the API relayed
 * out of the guest (kernel/host.ts), without a Node start in the slow kernel (logs too: the
 * daemon serves them). The rest (describe but of a pod, trace, ui) read the guest's kernel or
 * files and run in there; exec and describe pod are resolved here and only read or start
 * programs in there.
 */
const API_VERBS = new Set(['get', 'apply', 'delete', 'create', 'scale', 'wait', 'rollout', 'logs']);

/** Options of `describe` that take a value as the next argument. */
const DESCRIBE_VALUED = new Set(['-n', '--namespace', '--cluster']);

/**
 * Whether a command line is `describe` of a pod or a node (pure): the host runs that itself, the
 * API relayed and the kernel's state read by the guest's tools (cli/describe-kernel.ts), with no
 * kubewire process in there.
 */
export function describedOnHost(argv: string[]): boolean {
  if (argv[0] !== 'describe') return false;
  const words: string[] = [];
  for (let i = 1; i < argv.length && argv[i] !== '--'; i++) {
    if (DESCRIBE_VALUED.has(argv[i]!)) i++;
    else if (!argv[i]!.startsWith('-')) words.push(argv[i]!);
  }
  return /^(pod|pods|po|node|nodes|no)(\/|$)/.test(words[0] ?? '');
}

/** Whether a command line goes to the guest of its cluster's kernel (pure: `inKernel` says whether that cluster has one). */
export function runsInGuest(argv: string[], inKernel: boolean): boolean {
  if (!inKernel || !argv.length || HOST_VERBS.has(argv[0]!) || API_VERBS.has(argv[0]!) || describedOnHost(argv)) return false;
  const options = argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length);
  return !['--help', '-h', '--version', '-V'].some((o) => options.includes(o));
}

export interface Stdio {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Runs `kubewire ARGV` in the guest of `cluster`'s kernel from `cwd` (the guest sees the host's
 * files at the same paths); resolves with its exit status. An interrupt is passed on as
 * SIGINT (a second one as SIGKILL).
 */
export function runInKernel(cluster: string, argv: string[], io: Stdio, cwd = process.cwd()): Promise<number> {
  return session(cluster, { t: 'start', argv, cwd, env: forwardedEnv(process.env) }, io);
}

/** A program the host resolved (`exec`), run by the guest itself, with no kubewire process in there. */
export interface GuestProgram {
  argv: string[];
  env: Record<string, string>;
  /** The network namespace's path (the same in the guest). */
  netns?: string;
  /** What to say when that namespace is gone. */
  missing?: string;
  /** The guest's directory holding the pod's view of names (resolv.conf, hosts, hostname). */
  view?: string;
}

/** Runs `p` in the guest of `cluster`'s kernel; resolves with its exit status. */
export function runProgramInKernel(cluster: string, p: GuestProgram, io: Stdio, cwd = process.cwd()): Promise<number> {
  return session(cluster, { t: 'run', cwd, ...p, env: { ...forwardedEnv(process.env), ...p.env } }, io);
}

/** What a program run in the guest printed (its stderr ends with the guest's error line, if any), and its exit status. */
export interface GuestCapture {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `p` in the guest of `cluster`'s kernel with `input` as its stdin; resolves with its output. */
export async function captureInKernel(cluster: string, p: GuestProgram, input = ''): Promise<GuestCapture> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const code = await session(cluster, { t: 'run', cwd: '/', ...p }, { stdin: Readable.from(input ? [Buffer.from(input)] : []), stdout: sink(out), stderr: sink(err) });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Files of the guest of `cluster`'s kernel (path → text; null for one it has not), read there with no process started. */
export async function readInKernel(cluster: string, paths: string[]): Promise<Record<string, string | null>> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const code = await session(cluster, { t: 'read', paths }, { stdin: Readable.from([]), stdout: sink(out), stderr: sink(err) });
  if (code !== 0) throw new KernelError(`cannot read ${paths.join(', ')} in the kernel of cluster ${cluster}: ${Buffer.concat(err).toString('utf8').trim() || `exit status ${code}`}`);
  return JSON.parse(Buffer.concat(out).toString('utf8')) as Record<string, string | null>;
}

const sink = (into: Buffer[]) =>
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      into.push(Buffer.from(chunk));
      done();
    },
  });

/** One session over the kernel host's socket, opened by `first`: stdin in, output and exit status back. */
function session(cluster: string, first: Frame, io: Stdio): Promise<number> {
  const socketPath = kernelPaths(cluster).socket;
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    let interrupts = 0;
    const onInterrupt = () => socket.write(encodeFrame({ t: 'signal', sig: interrupts++ ? 'SIGKILL' : 'SIGINT' }));
    const forwardIn = (b: Buffer | string) => socket.write(encodeFrame({ t: 'in', d: Buffer.from(b).toString('base64') }));
    const endIn = () => socket.write(encodeFrame({ t: 'eof' }));
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      process.off('SIGINT', onInterrupt);
      io.stdin.off('data', forwardIn);
      io.stdin.off('end', endIn);
      io.stdin.pause();
      socket.destroy();
      resolve(code);
    };
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (done) return;
      done = true;
      process.off('SIGINT', onInterrupt);
      reject(new KernelError(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? `the kernel of cluster ${cluster} is not running (kubewire down --cluster ${cluster} removes what is left of it)` : `cannot reach the kernel of cluster ${cluster}: ${e.message}`));
    });
    socket.on('connect', () => {
      socket.write(encodeFrame(first));
      process.on('SIGINT', onInterrupt);
      io.stdin.on('data', forwardIn);
      io.stdin.on('end', endIn);
    });
    const reader = new FrameReader((f) => {
      if (f.t === 'out') io.stdout.write(Buffer.from(f.d, 'base64'));
      else if (f.t === 'err') io.stderr.write(Buffer.from(f.d, 'base64'));
      else if (f.t === 'exit') {
        if (f.error) io.stderr.write(`error: ${f.error}\n`);
        finish(f.code);
      }
    });
    socket.on('data', (b) => reader.push(b));
    socket.on('close', () => {
      if (!done) io.stderr.write(`error: the kernel of cluster ${cluster} closed the session\n`);
      finish(255);
    });
  });
}
