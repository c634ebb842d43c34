// The workload host: one process per node that serves every built-in workload of the
// node's pods. Each listening socket is opened inside its pod's network namespace (native
// helper), so the pod's IP answers on it exactly as if a process in the pod listened; one
// process serves hundreds of pods in a few MB instead of one Node process per pod. It runs
// apart from the daemon so that pods keep serving while the control plane restarts; one per
// node so that its crash is one node's containers dying, not the whole cluster's.
//   PUT /pods/UID  {pod, netns, logDir, workloads}  -> listening (idempotent)
//   DELETE /pods/UID                                -> closed, connections ended
//   GET /pods                                        -> the pods it serves
//   GET /watch                                       -> never ends: its close is the host's death

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createWriteStream, mkdirSync, rmSync, chmodSync, type WriteStream } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { answerUdp, handleHttp, plainAddress, type PodIdentity, type WorkloadSpec } from './builtin.ts';
import type { Dataplane } from '../dataplane/port.ts';

export interface PodWorkloads {
  pod: PodIdentity;
  netns: string;
  logDir: string;
  workloads: WorkloadSpec[];
}

interface Serving {
  spec: string; // JSON of the request, to make PUT idempotent
  close: () => Promise<void>;
}

async function openPod(dp: Dataplane, p: PodWorkloads): Promise<Serving> {
  const closers: Array<() => Promise<void>> = [];
  const logs: WriteStream[] = [];
  const close = async () => {
    await Promise.all(closers.map((c) => c()));
    for (const l of logs) l.end();
  };
  try {
    for (const w of p.workloads) {
      mkdirSync(join(p.logDir, w.container), { recursive: true });
      const log = createWriteStream(join(p.logDir, w.container, '0.log'), { flags: 'a' });
      logs.push(log);
      log.write(`kubewire built-in ${w.kind} workload for ${p.pod.namespace}/${p.pod.name} on ${w.ports.map((x) => `${x.port}/${x.protocol}`).join(', ')}\n`);
      for (const port of w.ports) {
        const fd = dp.at(p.netns).listen(port.protocol === 'UDP' ? 'udp' : 'tcp', port.port, 511);
        if (port.protocol === 'UDP') {
          const sock: UdpSocket = createSocket('udp6');
          await new Promise<void>((resolve, reject) => {
            sock.once('error', reject);
            sock.bind({ fd }, () => resolve());
          });
          sock.on('message', (msg, rinfo) => {
            const client = `${plainAddress(rinfo.address)}:${rinfo.port}`;
            sock.send(answerUdp(w.kind, p.pod, msg.toString('utf8'), client), rinfo.port, rinfo.address);
          });
          closers.push(() => new Promise((r) => sock.close(() => r())));
        } else {
          const sockets = new Set<Socket>();
          const server: Server = createHttpServer((req: IncomingMessage, res: ServerResponse) => log.write(`${handleHttp(w.kind, p.pod, req, res)}\n`));
          server.keepAliveTimeout = 5000;
          server.on('connection', (s: Socket) => {
            sockets.add(s);
            s.on('close', () => sockets.delete(s));
          });
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen({ fd }, () => resolve());
          });
          closers.push(
            () =>
              new Promise((r) => {
                server.close(() => r());
                for (const s of sockets) s.destroy(); // a container that stops drops its connections
              }),
          );
        }
      }
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { spec: JSON.stringify(p), close };
}

export async function runWorkloadHost(dp: Dataplane, socketPath: string): Promise<void> {
  const pods = new Map<string, Serving>();
  const pending = new Map<string, Promise<unknown>>();
  // One change per pod at a time: a PUT racing a DELETE must not leave a listener behind.
  const serial = <T>(uid: string, fn: () => Promise<T>): Promise<T> => {
    const next = (pending.get(uid) ?? Promise.resolve()).catch(() => undefined).then(fn);
    pending.set(uid, next);
    return next;
  };

  const server = createHttpServer(async (req, res) => {
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const url = new URL(req.url ?? '/', 'http://host');
      if (url.pathname === '/watch' && req.method === 'GET') {
        // The daemon holds this open: the kernel closes it the instant this process dies (kill -9 too).
        res.writeHead(200, { 'content-type': 'text/plain' });
        return void res.write(`${process.pid}\n`);
      }
      const m = url.pathname.match(/^\/pods(?:\/([\w-]+))?$/);
      if (!m) return reply(404, { message: 'not found' });
      const uid = m[1];
      if (!uid && req.method === 'GET') return reply(200, { pods: [...pods.keys()] });
      if (uid && req.method === 'PUT') {
        const chunks: Buffer[] = [];
        for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
        const spec = JSON.parse(Buffer.concat(chunks).toString('utf8')) as PodWorkloads;
        await serial(uid, async () => {
          const current = pods.get(uid);
          if (current?.spec === JSON.stringify(spec)) return;
          if (current) await current.close();
          pods.delete(uid);
          pods.set(uid, await openPod(dp, spec));
        });
        return reply(200, { uid, serving: true });
      }
      if (uid && req.method === 'DELETE') {
        await serial(uid, async () => {
          await pods.get(uid)?.close();
          pods.delete(uid);
        });
        return reply(200, { uid, serving: false });
      }
      reply(405, { message: `${req.method} not allowed` });
    } catch (e) {
      reply(500, { message: e instanceof Error ? e.message : String(e) });
    }
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  // Exiting closes every listener and connection at once; nothing is left to flush.
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
