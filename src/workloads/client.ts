// The node agents' side of the workload host: ensure / stop a pod's built-in workloads.

import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { startDetached } from '../supervisor/supervisor.ts';
import { cliEnv, cliPath } from '../state/paths.ts';
import type { PodWorkloads } from './host.ts';

export class WorkloadHostClient {
  constructor(readonly socketPath: string) {}

  private call(method: string, path: string, body?: unknown): Promise<{ code: number; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request({ socketPath: this.socketPath, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} }, async (res) => {
        const chunks: Buffer[] = [];
        for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
        resolve({ code: res.statusCode ?? 500, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> });
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  async alive(): Promise<boolean> {
    return this.call('GET', '/pods').then((r) => r.code === 200, () => false);
  }

  async ensure(uid: string, spec: PodWorkloads): Promise<void> {
    const r = await this.call('PUT', `/pods/${uid}`, spec);
    if (r.code !== 200) throw new Error(`built-in workload of pod ${spec.pod.namespace}/${spec.pod.name}: ${String(r.body.message)}`);
  }

  async stop(uid: string): Promise<void> {
    const r = await this.call('DELETE', `/pods/${uid}`);
    if (r.code !== 200) throw new Error(`stopping built-in workload of pod ${uid}: ${String(r.body.message)}`);
  }

  /** Starts the host (detached, so that it outlives the daemon) unless one answers already. */
  async start(cluster: string, logFile: string, pidFile: string): Promise<void> {
    if (await this.alive()) return;
    let exited = false;
    await startDetached({ argv: [process.execPath, cliPath(), 'workload-host', '--cluster', cluster, '--socket', this.socketPath, '--pid-file', pidFile], env: cliEnv(), logFile }, () => (exited = true));
    // As long as it runs it is starting: a Node start takes seconds in a kernel of its own on a
    // busy machine (UML), 0.1 s here. A host that exits, or takes a minute, has failed.
    const deadline = Date.now() + 60_000;
    while (!exited && Date.now() < deadline) {
      if (existsSync(this.socketPath) && (await this.alive())) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`the workload host ${exited ? 'exited while starting' : 'did not start within 60 s'} (see ${logFile})`);
  }
}
