// The nodes' pod sandboxes made on a thread of their own, off the API server's event loop.
// A pod's network set-up (its namespace, CNI ADD in-process: bridge and veth batches,
// sysctls inside the pod, host-local's files, the result cache) is synchronous kernel and
// file work in bursts: profiled in the daemon during bench:api's 1,000-pod start (load 30),
// 64 s of the loop's 230 s were CNI (setSysctls 36 s, host-local's files 12 s, the cache's
// 5 s...), and every API request waited behind it. Here one worker thread runs every node's
// SandboxManager as the agents did; the agents ask it by message and await the answer, as a
// kubelet asks its container runtime. The kernel and the files are the record, so a worker
// that dies is simply started again by the next call.

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { NodePlan } from '../cluster/plan.ts';
import { podNetnsName } from '../cluster/plan.ts';
import type { NodeFiles } from '../cluster/topology.ts';
import { linux } from '../dataplane/linux/host.ts';
import { SandboxManager, type PodRef, type Sandbox, type Sandboxes } from '../node/sandbox.ts';
import { cliPath } from '../state/paths.ts';

/** What the worker is started with: the cluster and each node it makes sandboxes for. */
export interface SandboxWorkerData {
  kubewireWorker: 'sandboxes';
  cluster: string;
  nodes: Array<{ node: NodePlan; files: NodeFiles }>;
}

type Op = { op: 'create'; pod: PodRef; portMappings: unknown[] } | { op: 'remove'; pod: PodRef } | { op: 'gc'; wanted: PodRef[] } | { op: 'namespaces' };
type Request = Op & { id: number; node: string };
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

/** The daemon's side: one worker for every node, started on first use and again after it died. */
export class SandboxWorker {
  private worker?: Worker;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closed = false;

  constructor(private readonly data: Omit<SandboxWorkerData, 'kubewireWorker'>, private readonly log: (line: string) => void) {}

  /** One node's sandboxes, with SandboxManager's calls. */
  forNode(node: NodePlan): Sandboxes {
    return {
      netnsName: (pod) => podNetnsName(this.data.cluster, node.name, pod),
      create: (pod, portMappings = []) => this.ask({ op: 'create', pod, portMappings }, node.name) as Promise<Sandbox>,
      remove: (pod) => this.ask({ op: 'remove', pod }, node.name) as Promise<void>,
      gc: (wanted) => this.ask({ op: 'gc', wanted }, node.name) as Promise<string[]>,
      namespaces: () => this.ask({ op: 'namespaces' }, node.name) as Promise<string[]>,
    };
  }

  private ask(op: Op, node: string): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the sandbox worker is stopped (the daemon is shutting down)'));
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const w = this.started();
      w.ref(); // an answer awaited keeps the process up; an idle worker does not
      w.postMessage({ ...op, id, node } satisfies Request);
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    // The CLI's entry, as the daemon's own (a bundle has no file per module): it hands the thread to runSandboxWorker.
    const w = new Worker(cliPath(), { workerData: { kubewireWorker: 'sandboxes', ...this.data } satisfies SandboxWorkerData });
    w.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (!this.pending.size) w.unref();
      if (r.ok) p.resolve(r.value);
      else p.reject(new Error(r.message));
    });
    const gone = (why: string) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      if (!this.closed) this.log(`sandbox worker ${why}; the next pod set-up starts another`);
      for (const p of this.pending.values()) p.reject(new Error(`the sandbox worker ${why}`));
      this.pending.clear();
    };
    w.on('error', (e) => gone(`failed: ${e.message}`));
    w.on('exit', (code) => gone(`exited (${code})`));
    this.worker = w;
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    for (const p of this.pending.values()) p.reject(new Error('the sandbox worker is stopped (the daemon is shutting down)'));
    this.pending.clear();
    await w?.terminate();
  }
}

/** In a worker started by SandboxWorker: serves its requests until terminated. True when this thread is one. */
function runSandboxWorker(): boolean {
  const data = workerData as SandboxWorkerData | undefined;
  if (isMainThread || data?.kubewireWorker !== 'sandboxes' || !parentPort) return false;
  const port = parentPort;
  const managers = new Map(data.nodes.map(({ node, files }) => [node.name, new SandboxManager(data.cluster, node, files, linux)]));
  port.on('message', (r: Request) => {
    const m = managers.get(r.node);
    const run = async (): Promise<unknown> => {
      if (!m) throw new Error(`no node ${JSON.stringify(r.node)} in cluster ${data.cluster}`);
      switch (r.op) {
        case 'create': return m.create(r.pod, r.portMappings);
        case 'remove': return m.remove(r.pod);
        case 'gc': return m.gc(r.wanted);
        case 'namespaces': return m.namespaces();
      }
    };
    run().then(
      (value) => port.postMessage({ id: r.id, ok: true, value } satisfies Reply),
      (e: unknown) => port.postMessage({ id: r.id, ok: false, message: e instanceof Error ? e.message : String(e) } satisfies Reply),
    );
  });
  return true;
}

/** Whether this thread is the sandboxes' worker (the CLI's entry imports this module first there), serving from the moment it loads. */
export const servingSandboxes = runSandboxWorker();
