// The node side of the API's streams, as the kubelet serves them: exec runs a command where
// `kubewire exec` runs it (the pod's network namespace, its view of names, the container's
// user and environment); attach follows a container's output; port-forward connects to
// localhost:PORT inside the pod's network namespace (a socket made in there by the native
// helper, so nothing is opened in the daemon's own namespace); logs read the container's log.
// In a cluster with a kernel of its own the daemon runs in that kernel: the same code serves.

import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { constants as os } from 'node:os';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Container, Pod } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
import { badRequest, type ContainerSession, type ExecRequest } from '../apiserver/streams/exec.ts';
import type { LogQuery } from '../apiserver/streams/logs.ts';
import type { PortForwardTarget } from '../apiserver/streams/portforward.ts';
import { StatusError } from '../apiserver/status.ts';
import { netnsAddon } from '../dataplane/linux/native.ts';
import type { NodeAgent } from '../node/agent.ts';
import { ContainerConfigError, passwdGroups, runAs } from '../node/container-config.ts';
import { loadSpawnIn, startInAsync, StartError, type PipedProcess, type SpawnInAddon } from '../supervisor/spawn-in.ts';
import { asUser, runCaptured, startPipedIn, toolPath, type PodView } from '../supervisor/supervisor.ts';
import { packageRoot } from '../state/paths.ts';
import { logStream } from './logs.ts';

/** What a log request gets: the bytes, and warnings for what kubewire's log files cannot do. */
export interface PodLog {
  stream: Readable;
  warnings: string[];
}

/** A word for a shell, quoted (pure). */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** argv on a new pseudo-terminal through script(1) (util-linux): its output is the terminal's, its exit status the command's (pure). */
export function onTerminal(argv: string[]): string[] {
  return ['script', '--quiet', '--return', '--flush', '--command', `exec ${argv.map(shellQuote).join(' ')}`, '/dev/null'];
}

export class PodStreams {
  constructor(
    private readonly api: Api,
    private readonly agents: readonly NodeAgent[],
  ) {}

  /** The pod, its container (the first unless named) and the node's record of it while it runs. */
  private running(namespace: string, name: string, containerName?: string) {
    const pod = this.api.get({ kind: 'Pod', namespace, name }) as Pod;
    const container = containerName ? pod.spec.containers.find((c) => c.name === containerName) : pod.spec.containers[0];
    if (!container) throw badRequest(`container ${containerName} is not valid for pod ${name}`);
    const local = this.agents.find((a) => a.nodeName === pod.spec.nodeName)?.localPod(namespace, name);
    if (!local || pod.status?.phase !== 'Running') throw badRequest(`unable to upgrade connection: pod ${name} is not running (phase ${pod.status?.phase ?? 'Pending'}${pod.spec.nodeName ? '' : ', not scheduled yet'})`);
    return { pod, container, local };
  }

  async exec(r: ExecRequest): Promise<ContainerSession> {
    const { pod, container, local } = this.running(r.namespace, r.pod, r.container);
    let user: { uid: number; gid: number } | undefined;
    try {
      user = runAs(pod, container, passwdGroups(readFileSync('/etc/passwd', 'utf8')));
    } catch (e) {
      if (e instanceof ContainerConfigError) throw badRequest(e.message);
      throw e;
    }
    if (r.tty && toolPath('script') === 'script') throw badRequest('a terminal (tty) needs script(1) from util-linux on this machine; run without -t');
    if (r.tty && !existsSync('/dev/pts/ptmx')) throw badRequest('a terminal (tty) needs pseudo-terminals (devpts on /dev/pts), which this kernel has not mounted; run without -t');
    const argv = asUser(r.command, user);
    const etc = join(local.dir, 'etc');
    const view: PodView | undefined = existsSync(join(etc, 'hostname')) ? { dir: etc, hostname: readFileSync(join(etc, 'hostname'), 'utf8').trim() } : undefined;
    const opts = { cwd: container.workingDir || '/', env: this.env(pod, container, local.ip, r.tty), netns: local.netns, view };
    const full = r.tty ? onTerminal(argv) : argv;
    let child: PipedProcess;
    try {
      // One clone into the pod's namespaces where the native helper has spawnIn (nsenter, unshare and a shell otherwise: three more starts, slow in UML).
      const native = spawnInAddon();
      child = native ? await startInAsync(native, full, opts) : startPipedIn(full, opts);
    } catch (e) {
      if (!(e instanceof StartError)) throw e;
      // As a runtime reports a command it cannot start: its words on stderr, 126 or 127.
      const stderr = Readable.from([`${e.message}\n`]);
      return { stdout: Readable.from([]), stderr: r.tty ? undefined : stderr, done: Promise.resolve({ code: e.status }), kill: () => undefined };
    }
    const done = new Promise<{ code?: number; message?: string }>((resolve) => {
      child.once('error', (e) => resolve({ message: `cannot run ${JSON.stringify(r.command[0])}: ${e.message}` }));
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code: code ?? 128 + (signal ? (os.signals[signal] ?? 0) : 0) }));
    });
    child.stdin!.on('error', () => undefined);
    if (!r.stdin) child.stdin!.end();
    let ended = false;
    void done.then(() => (ended = true));
    let resizing = Promise.resolve();
    return {
      stdin: r.stdin ? child.stdin! : undefined,
      stdout: child.stdout!,
      stderr: r.tty ? undefined : child.stderr!,
      // In order: a later size never overtaken by an earlier one still looking for the terminal.
      resize: r.tty ? (size) => void (resizing = resizing.then(() => resizeTerminal(child.pid, size))) : undefined,
      done,
      kill: () => {
        if (ended || !child.pid) return;
        // A hang-up, as a closed terminal gives; what ignores it is killed a moment later.
        signalGroup(child.pid, 'SIGHUP');
        setTimeout(() => !ended && signalGroup(child.pid!, 'SIGKILL'), 2000).unref();
      },
    };
  }

  /** The command's environment: the container's, as `kubewire exec` gives it (TERM on a terminal, as the kubelet sets it). */
  private env(pod: Pod, c: Container, ip: string, tty: boolean): NodeJS.ProcessEnv {
    const base: NodeJS.ProcessEnv = { PATH: process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOSTNAME: pod.spec.hostname ?? pod.metadata.name, POD_NAME: pod.metadata.name, POD_NAMESPACE: pod.metadata.namespace, POD_IP: ip, ...(tty ? { TERM: 'xterm' } : {}) };
    // As a runtime's exec: the container's whole environment (env, envFrom, the Services'), not only its literal values.
    const agent = this.agents.find((a) => a.nodeName === pod.spec.nodeName);
    return { ...base, ...agent?.execEnv(pod, c) };
  }

  /**
   * attach: kubewire's containers write their stdout and stderr to a log file and keep no
   * stdin, so attach follows that file from now on (both on stdout) until the container ends.
   */
  async attach(r: ExecRequest): Promise<ContainerSession> {
    const { container, local } = this.running(r.namespace, r.pod, r.container);
    if (r.stdin) throw badRequest(`kubewire keeps no stdin for container ${container.name} (its output goes to a log file): attach without -i follows its output; kubectl exec -i runs a command with input`);
    const stream = logStream(join(local.dir, container.name, '0.log'), { follow: true, fromEnd: true, stillThere: () => existsSync(local.dir) });
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<{ code?: number }>((resolve) => {
      // The agent's record says when the container's process ended (a built-in workload has none: the pod's end ends it).
      const record = () => this.agents.find((a) => a.localPod(r.namespace, r.pod))?.localPod(r.namespace, r.pod);
      timer = setInterval(() => {
        const now = record();
        const c = now?.containers[container.name];
        if (now?.uid !== local.uid) return resolve({ code: 0 });
        if (c && !c.process && c.lastTerminated) resolve({ code: c.lastTerminated.exitCode });
      }, 500);
    }).finally(() => {
      clearInterval(timer);
      stream.push(null);
    });
    return { stdout: r.stdout ? stream : undefined, done, kill: () => (clearInterval(timer), stream.destroy()) };
  }

  async portForward(r: { namespace: string; pod: string }): Promise<PortForwardTarget> {
    const { pod, local } = this.running(r.namespace, r.pod);
    return { pod: pod.metadata.name, uid: pod.metadata.uid ?? '', dial: (port) => dialInside(local.netns, port) };
  }

  log(r: LogQuery & { namespace: string; pod: string }): PodLog {
    const pod = this.api.get({ kind: 'Pod', namespace: r.namespace, name: r.pod }) as Pod;
    const names = pod.spec.containers.map((c) => c.name);
    const container = r.container ?? (names.length === 1 ? names[0] : undefined);
    if (!container) throw badRequest(`a container name must be specified for pod ${r.pod}, choose one of: [${names.join(' ')}]`);
    if (!names.includes(container)) throw badRequest(`container ${container} is not valid for pod ${r.pod}`);
    const local = this.agents.find((a) => a.nodeName === pod.spec.nodeName)?.localPod(r.namespace, r.pod);
    if (!local) throw badRequest(`container "${container}" in pod "${r.pod}" is waiting to start: ContainerCreating`);
    const record = local.containers[container];
    const warnings: string[] = [];
    if (r.previous) {
      if (!record?.lastTerminated) throw badRequest(`previous terminated container "${container}" in pod "${r.pod}" not found`);
      warnings.push(`kubewire keeps one log per container across its restarts: this is the whole log of ${container}, its earlier runs and the current one`);
    }
    const file = join(local.dir, container, '0.log');
    if (r.timestamps) warnings.push('kubewire\'s log files record no time per line: the lines are shown without timestamps');
    const follow = r.follow;
    if (r.since !== undefined) {
      // No time per line: only whether the file was written since then.
      const mtime = statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0;
      if (mtime < r.since) return { stream: logStream(file, { follow, tailLines: 0, limitBytes: r.limitBytes, stillThere: () => existsSync(local.dir) }), warnings };
      warnings.push('kubewire\'s log files record no time per line: the whole log is shown, as it was written to since then');
    }
    return { stream: logStream(file, { follow, tailLines: r.tailLines, limitBytes: r.limitBytes, stillThere: () => existsSync(local.dir) }), warnings };
  }
}

let spawnIn: SpawnInAddon | undefined | null = null;
/** The native helper's spawnIn, looked for once; undefined where it is not built. */
function spawnInAddon(): SpawnInAddon | undefined {
  if (spawnIn === null) spawnIn = loadSpawnIn(join(packageRoot(), 'build', 'Release', 'kubewire_netns.node'));
  return spawnIn;
}

/** A signal to the process group `pid` leads (startPipedIn starts a group); nothing if it is gone. */
function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // gone
  }
}

/**
 * A terminal's new size, set on the pseudo-terminal that script(1) (`pid`) made for its
 * command: stty sets it (TIOCSWINSZ) and the kernel sends the command SIGWINCH. Right after
 * the start script may not have made it yet: looked for every 0.1 s for 5 s (a user-mode
 * Linux kernel takes a second or more to start script and its command).
 */
async function resizeTerminal(pid: number | undefined, size: { width: number; height: number }, attempts = 50): Promise<void> {
  if (!pid) return;
  for (let i = 0; i < attempts; i++) {
    let tty: string | undefined;
    try {
      const child = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0];
      if (child) tty = readlinkSync(`/proc/${child}/fd/0`);
    } catch {
      // not there yet, or gone
    }
    if (tty?.startsWith('/dev/pts/')) {
      await runCaptured(['stty', '-F', tty, 'rows', String(size.height), 'cols', String(size.width)]).catch(() => undefined);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One connection attempt to `address`:`port` from a socket made inside `netns`. */
function connectFrom(netns: string, family: 4 | 6, address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    try {
      socket = new Socket({ fd: netnsAddon().socketIn(netns, family) });
    } catch (e) {
      return reject(e);
    }
    const timer = setTimeout(() => socket.destroy(new Error(`connect to ${address}:${port} timed out after ${timeoutMs / 1000} s`)), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    });
    socket.connect(port, address);
  });
}

/** localhost:`port` inside the pod's namespace, IPv4 first then IPv6, as the kubelet dials it. */
export async function dialInside(netns: string, port: number, timeoutMs = 10_000): Promise<Socket> {
  try {
    return await connectFrom(netns, 4, '127.0.0.1', port, timeoutMs);
  } catch (v4) {
    try {
      return await connectFrom(netns, 6, '::1', port, timeoutMs);
    } catch (v6) {
      throw new Error(`failed to connect to localhost:${port} inside the pod's network namespace: IPv4: ${(v4 as Error).message}; IPv6: ${(v6 as Error).message}`);
    }
  }
}
