// The plugin server: runs kubewire's CNI plugins in this process for the C shim
// (native/cni-shim.c), which a runtime executes in the plugin's place, as Multus's thick
// plugin and Cilium's agent serve theirs. A call costs the shim's start and a socket round
// trip instead of a Node.js start (40-60 ms).
//
// What the plugin would have seen as an executable, it sees here: the caller's environment
// and stdin, and the caller's network namespace as its host (held open by descriptor for the
// whole call, so a caller killed meanwhile changes nothing). Calls run in parallel, as
// separate executables would: shared state is locked by the plugins themselves (host-local's
// flock is per open file, so two calls of one process exclude each other as two processes
// do). Calls for one attachment (container ID + interface) run one after another: a runtime
// that kills a slow ADD and sends DEL gets its DEL after the ADD, never interleaved with it.
// A call the server cannot make exactly as the executable would (another mount namespace,
// relative paths from another working directory, an unknown plugin, a caller that is gone) it
// declines before doing anything, and the shim executes the plugin itself.

import { closeSync, fstatSync, openSync, renameSync, rmSync, statSync, chmodSync, mkdirSync, lstatSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Dataplane } from '../../dataplane/port.ts';
import { PLUGINS } from '../plugins/registry.ts';
import { runPlugin } from '../skel/skel.ts';
import { DECLINED, TAKEN, ProtocolError, decodeRequest, encodeAnswer, type ShimRequest } from './protocol.ts';

export interface CniServerOptions {
  socket: string;
  dataplane: Dataplane;
  /** The server's own troubles (a malformed request, a call that threw); never the plugins' logs. */
  log?: (line: string) => void;
  /** A client silent this long after connecting is dropped (it never sent its call). */
  requestTimeoutMs?: number;
}

export interface CniServerStats {
  served: number;
  declined: number;
  inFlight: number;
}

/** The namespaces this process is in, as "dev:ino" (what the shim sends for its own). */
export function namespaceId(path: string): string {
  const st = statSync(path);
  return `${st.dev}:${st.ino}`;
}

export type Decision = { run: true; sameNetns: boolean } | { run: false; why: string };

/** Whether the server can make this call exactly as the executable would (pure). */
export function decide(req: ShimRequest, self: { netns: string; mntns: string; cwd: string }): Decision {
  if (!Object.hasOwn(PLUGINS, req.plugin)) return { run: false, why: `no plugin ${JSON.stringify(req.plugin)} here` };
  if (!req.mntns || req.mntns !== self.mntns) return { run: false, why: 'the caller sees another filesystem (mount namespace)' };
  if (req.cwd !== self.cwd && relativePaths(req).length) return { run: false, why: `relative paths (${relativePaths(req).join(', ')}) from another working directory` };
  if (!req.netns) return { run: false, why: 'the caller\'s network namespace is unknown' };
  return { run: true, sameNetns: req.netns === self.netns };
}

/** Paths of the call that a plugin would resolve against its working directory. */
export function relativePaths(req: Pick<ShimRequest, 'env' | 'stdin'>): string[] {
  const out: string[] = [];
  const rel = (what: string, p: unknown): void => {
    if (typeof p === 'string' && p !== '' && !p.startsWith('/')) out.push(what);
  };
  rel('CNI_NETNS', req.env.CNI_NETNS);
  for (const dir of (req.env.CNI_PATH ?? '').split(':')) rel('CNI_PATH', dir);
  try {
    const conf = JSON.parse(req.stdin.toString('utf8')) as { ipam?: Record<string, unknown> } & Record<string, unknown>;
    for (const key of ['dataDir', 'resolvConf', 'socket']) {
      rel(key, conf?.[key]);
      rel(`ipam.${key}`, conf?.ipam?.[key]);
    }
  } catch {
    // not JSON: the plugin says so, wherever it runs
  }
  return out;
}

export class CniServer {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  /** The call running (or queued) per attachment: the next one for it waits. */
  private readonly attachments = new Map<string, Promise<unknown>>();
  private readonly calls = new Set<Promise<void>>();
  readonly stats: CniServerStats = { served: 0, declined: 0, inFlight: 0 };
  private self?: { netns: string; mntns: string; cwd: string };

  constructor(private readonly opts: CniServerOptions) {}

  get socket(): string {
    return this.opts.socket;
  }

  /**
   * Listens on the socket (mode 0600: the caller is root, as a runtime is). A socket file
   * nobody answers on is replaced; one that answers belongs to another server: an error.
   */
  async listen(): Promise<void> {
    const path = this.opts.socket;
    this.self = { netns: namespaceId('/proc/self/ns/net'), mntns: namespaceId('/proc/self/ns/mnt'), cwd: process.cwd() };
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    if (await answers(path)) throw new Error(`the CNI plugin server socket ${path} is served by another process`);
    // Made under another name and renamed into place: the socket is never there with the wrong mode.
    const tmp = `${path}.${process.pid}.tmp`;
    rmSync(tmp, { force: true });
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tmp, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log(`CNI plugin server ${path}: ${e.message}`));
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
    this.server = server;
  }

  /** Stops listening and waits (at most `graceMs`) for the calls under way. */
  async close(graceMs = 10_000): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) {
      // Our socket file only: another server may have taken the path since.
      try {
        if (lstatSync(this.opts.socket).isSocket()) rmSync(this.opts.socket, { force: true });
      } catch {
        // already gone
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.calls]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const s of this.sockets) s.destroy();
  }

  private log(line: string): void {
    (this.opts.log ?? ((l: string) => void process.stderr.write(`${l}\n`)))(line);
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    const chunks: Buffer[] = [];
    let size = 0;
    let started = false;
    // A client killed mid-call is an error on write, or a close: nothing to do but drop it.
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
    socket.setTimeout(this.opts.requestTimeoutMs ?? 30_000, () => {
      if (!started) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      if (started) return;
      chunks.push(chunk);
      size += chunk.length;
      let req: ShimRequest | undefined;
      try {
        req = decodeRequest(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      } catch (e) {
        this.log(`CNI plugin server: dropped a client: ${(e as ProtocolError).message}`);
        socket.destroy();
        return;
      }
      if (!req) return;
      started = true;
      socket.setTimeout(0);
      const call = this.serve(socket, req).finally(() => this.calls.delete(call));
      this.calls.add(call);
    });
  }

  private async serve(socket: Socket, req: ShimRequest): Promise<void> {
    const decision = decide(req, this.self!);
    if (!decision.run) return this.decline(socket);
    // The caller's namespace, held by our own descriptor: it stays the same namespace for the
    // whole call even if the caller dies, and a reused pid cannot pass for it (dev:ino checked).
    let fd: number | undefined;
    if (!decision.sameNetns) {
      try {
        fd = openSync(`/proc/${req.pid}/ns/net`, 'r');
        const st = fstatSync(fd);
        if (`${st.dev}:${st.ino}` !== req.netns) throw new Error('another namespace');
      } catch {
        if (fd !== undefined) closeSync(fd);
        return this.decline(socket);
      }
    }
    try {
      socket.write(TAKEN);
      this.stats.inFlight++;
      const hostNetns = fd === undefined ? undefined : `/proc/${process.pid}/fd/${fd}`;
      const { code, stdout, stderr } = await this.oneAtATime(req, () => this.run(req, hostNetns));
      this.stats.served++;
      if (!socket.destroyed) socket.end(encodeAnswer(code, stdout, stderr));
    } finally {
      this.stats.inFlight--;
      if (fd !== undefined) closeSync(fd);
    }
  }

  private decline(socket: Socket): void {
    this.stats.declined++;
    socket.end(DECLINED);
  }

  private async run(req: ShimRequest, hostNetns: string | undefined): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    try {
      const code = await runPlugin(req.plugin, PLUGINS[req.plugin]!, { env: req.env, stdin: req.stdin, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, this.opts.dataplane, hostNetns);
      return { code, stdout, stderr };
    } catch (e) {
      // runPlugin answers every failure itself; this is a bug, said as the skel says one (999).
      this.log(`CNI plugin server: ${req.plugin} threw: ${(e as Error).stack ?? e}`);
      return { code: 1, stdout: JSON.stringify({ code: 999, msg: `kubewire ${req.plugin} plugin failed: ${(e as Error).message}` }), stderr };
    }
  }

  /** Calls for one attachment in the order they came; others in parallel. */
  private async oneAtATime<T>(req: ShimRequest, fn: () => Promise<T>): Promise<T> {
    const id = req.env.CNI_CONTAINERID;
    if (!id || !['ADD', 'DEL', 'CHECK'].includes(req.env.CNI_COMMAND ?? '')) return fn();
    const key = `${id}\0${req.env.CNI_IFNAME ?? ''}`;
    const before = this.attachments.get(key) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    const tail = mine.catch(() => undefined);
    this.attachments.set(key, tail);
    try {
      return await mine;
    } finally {
      if (this.attachments.get(key) === tail) this.attachments.delete(key);
    }
  }
}

/** Whether a server answers on `path` (a connect that succeeds). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
