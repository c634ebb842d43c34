// The node agents' side of a node's workload host: ensure / stop a pod's built-in workloads.
// The host is started on first need (the first pod with a built-in server on the node), not
// by `up`: a Node start costs seconds in a kernel of its own. While it runs the client holds
// a watch connection to it, whose close says at once that it died (kill -9, OOM).

import { existsSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import { join } from 'node:path';
import { startDetached } from '../supervisor/supervisor.ts';
import { cliEnv, cliPath } from '../state/paths.ts';
import type { PodWorkloads } from './host.ts';

/** Where a node's workload host keeps its socket, pid and log: in the node's state directory. */
export function nodeHostPaths(clusterDir: string, node: string): { socket: string; pidFile: string; log: string } {
  const dir = join(clusterDir, 'nodes', node);
  return { socket: join(dir, 'workloads.sock'), pidFile: join(dir, 'workloads.pid'), log: join(dir, 'workloads.log') };
}

/**
 * How long to wait before starting a host again (pure), from how many hosts in a row died
 * within 10 s of their start: the first at once, as the kubelet restarts a container that
 * died the first time; then a back-off doubling from 0.5 s to 30 s, so a crash loop does not spin.
 */
export function restartDelayMs(quickDeaths: number): number {
  return quickDeaths <= 1 ? 0 : Math.min(500 * 2 ** (quickDeaths - 2), 30_000);
}

export interface WorkloadHostOptions {
  cluster: string;
  socket: string;
  pidFile: string;
  log: string;
  /** The host died (not stopped by us): its pods' built-in containers are gone. */
  lost?: () => void;
}

export class WorkloadHostClient {
  private watch?: ClientRequest;
  private starting?: Promise<void>;
  private closed = false;
  private startedAt = 0;
  private quickDeaths = 0;

  constructor(private readonly o: WorkloadHostOptions) {}

  get socketPath(): string {
    return this.o.socket;
  }

  private call(method: string, path: string, body?: unknown): Promise<{ code: number; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request({ socketPath: this.o.socket, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} }, async (res) => {
        const chunks: Buffer[] = [];
        for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
        resolve({ code: res.statusCode ?? 500, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> });
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  async alive(): Promise<boolean> {
    if (!existsSync(this.o.socket)) return false;
    return this.call('GET', '/pods').then((r) => r.code === 200, () => false);
  }

  async ensure(uid: string, spec: PodWorkloads): Promise<void> {
    await this.running();
    const r = await this.call('PUT', `/pods/${uid}`, spec);
    if (r.code !== 200) throw new Error(`built-in workload of pod ${spec.pod.namespace}/${spec.pod.name}: ${String(r.body.message)}`);
  }

  async stop(uid: string): Promise<void> {
    // No host, nothing served: stopping starts none.
    if (!this.watch && !(await this.alive())) return;
    const r = await this.call('DELETE', `/pods/${uid}`);
    if (r.code !== 200) throw new Error(`stopping built-in workload of pod ${uid}: ${String(r.body.message)}`);
  }

  /** Stops watching (the daemon stops); the host itself runs on, serving its pods. */
  close(): void {
    this.closed = true;
    this.watch?.destroy();
    this.watch = undefined;
  }

  /** The host, watched: adopted if one answers (a restarted daemon), else started. One start at a time. */
  private running(): Promise<void> {
    if (this.watch) return Promise.resolve();
    this.starting ??= this.adoptOrStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async adoptOrStart(): Promise<void> {
    if (!(await this.alive())) {
      const delay = restartDelayMs(this.quickDeaths);
      if (delay) await new Promise((r) => setTimeout(r, delay));
      await this.start();
      this.startedAt = Date.now();
    }
    await this.watchHost();
  }

  /** Holds GET /watch open; its end (the host died) is reported once, and the next ensure starts a new host. */
  private watchHost(): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.o.socket, method: 'GET', path: '/watch' }, (res) => {
        if (res.statusCode !== 200) {
          req.destroy();
          return reject(new Error(`the workload host at ${this.o.socket} refused its watch (${res.statusCode})`));
        }
        this.watch = req;
        res.resume();
        res.once('close', () => {
          if (this.watch !== req) return;
          this.watch = undefined;
          if (this.closed) return;
          const lived = Date.now() - this.startedAt;
          this.quickDeaths = lived < 10_000 ? this.quickDeaths + 1 : 0;
          this.o.lost?.();
        });
        resolve();
      });
      req.on('error', (e) => (this.watch === req ? undefined : reject(e)));
      req.end();
    });
  }

  /** Starts the host (detached, so that it outlives the daemon). */
  private async start(): Promise<void> {
    let exited = false;
    const { cluster, socket, pidFile, log } = this.o;
    await startDetached({ argv: [process.execPath, cliPath(), 'workload-host', '--cluster', cluster, '--socket', socket, '--pid-file', pidFile], env: cliEnv(), logFile: log }, () => (exited = true));
    // As long as it runs it is starting: a Node start takes seconds in a kernel of its own on a
    // busy machine (UML), 0.1 s here. A host that exits, or takes a minute, has failed.
    const deadline = Date.now() + 60_000;
    while (!exited && Date.now() < deadline) {
      if (await this.alive()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`the workload host ${exited ? 'exited while starting' : 'did not start within 60 s'} (see ${log})`);
  }
}
