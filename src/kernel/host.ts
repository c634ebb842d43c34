// The host end of a cluster's own kernel (`up --kernel uml` starts it as a detached
// process): it boots the kernel with the guest agent as its one command, appends the kernel's
// console to the cluster's kernel.log, and once the guest is ready serves a unix socket in
// the cluster's host directory. Each connection there is one session: a kubewire command run
// in the guest, its frames relayed over the kernel's console line. SIGTERM powers the kernel
// off (killed after a grace period); when the kernel ends, so does this process. It also
// relays the cluster's API: api.sock for kubewire's CLI, 127.0.0.1:PORT (HTTPS) for kubectl.

import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { writeJsonAtomically } from '../state/files.ts';
import { join } from 'node:path';
import { daemonPaths, kernelPaths, packageRoot } from '../state/paths.ts';
import { startTicks } from '../supervisor/supervisor.ts';
import { GUEST_CHANNEL, startKernel } from '../supervisor/uml.ts';
import { clusterKernel, GUEST_STATE_DIR } from './client.ts';
import { API_HOST, guestTlsSocket, readEndpoint } from '../identity/endpoint.ts';
import { encodeFrame, FrameReader, type Frame } from './frames.ts';


export async function runKernelHost(cluster: string, memMB: number): Promise<void> {
  const paths = kernelPaths(cluster);
  mkdirSync(paths.bootDir, { recursive: true });
  const log = openSync(paths.log, 'a');
  // The time of each line: the kernel's own lines carry its uptime, these the host's clock (bench:uml reads both).
  const note = (line: string) => process.stdout.write(`kubewire kernel-host: ${new Date().toISOString()} ${line}\n`);
  const modules = clusterKernel(cluster)?.modules;
  const kernel = startKernel(
    {
      dir: paths.bootDir,
      command: `exec ${process.execPath} ${join(packageRoot(), 'dist', 'guest.js')} --channel ${GUEST_CHANNEL}`,
      cwd: packageRoot(),
      // KUBEWIRE_HOST_DIR: where the guest's `up` leaves the host a copy of the cluster's record.
      env: { KUBEWIRE_STATE_DIR: GUEST_STATE_DIR, KUBEWIRE_GUEST: '1', KUBEWIRE_CLUSTER: cluster, KUBEWIRE_HOST_DIR: paths.dir },
      ...(modules ? { modules } : {}),
    },
    memMB,
    log,
  );
  closeSync(log);
  const kernelPid = kernel.pid!;
  writeJsonAtomically(paths.kernelPidFile, { pid: kernelPid, startTicks: startTicks(kernelPid) ?? '', startedAt: new Date().toISOString() }, 0o600);
  note(`kernel started (pid ${kernelPid}, ${memMB} MB)`);

  const toGuest = kernel.stdio[3] as NodeJS.WritableStream;
  const fromGuest = kernel.stdio[4] as NodeJS.ReadableStream;
  const clients = new Map<number, Socket>();
  let next = 1;
  const server = createServer((socket) => {
    const s = next++;
    clients.set(s, socket);
    const reader = new FrameReader((f) => {
      if (f.t === 'start' || f.t === 'run' || f.t === 'read' || f.t === 'in' || f.t === 'eof' || f.t === 'signal') toGuest.write(encodeFrame({ ...f, s }));
    });
    socket.on('data', (b) => reader.push(b));
    socket.on('error', () => {});
    socket.on('close', () => {
      // A CLI that went away takes its command with it.
      if (clients.delete(s)) toGuest.write(encodeFrame({ t: 'signal', s, sig: 'SIGTERM' }));
    });
  });

  // The cluster's API, relayed: each connection to the host's api.sock is a stream to the
  // daemon's socket in the guest, so that the verbs that only talk to the API run on the host
  // (a Node start here costs a fifth of one in there).
  const streams = new Map<number, Socket>();
  const relayTo = (guestPath: string) =>
    createServer((socket) => {
      const s = next++;
      streams.set(s, socket);
      toGuest.write(encodeFrame({ t: 'dial', s, path: guestPath }));
      socket.on('data', (b: Buffer) => toGuest.write(encodeFrame({ t: 'in', s, d: b.toString('base64') })));
      socket.on('end', () => toGuest.write(encodeFrame({ t: 'eof', s })));
      socket.on('error', () => {});
      socket.on('close', () => {
        if (streams.delete(s)) toGuest.write(encodeFrame({ t: 'signal', s, sig: 'SIGTERM' }));
      });
    });
  const apiRelay = relayTo(join(GUEST_STATE_DIR, cluster, 'api.sock'));
  const apiSocket = daemonPaths(cluster).socket;
  // kubectl's way in: the host's 127.0.0.1:PORT (recorded at `up`), relayed to the guest daemon's
  // TLS socket; TLS and the client certificate's check happen in the guest, end to end.
  const httpsRelay = relayTo(guestTlsSocket(join(GUEST_STATE_DIR, cluster)));
  // The port is chosen by `up` while the kernel boots: looked for once the guest is ready, and until it is there (a minute at most).
  const serveHttps = (until: number) => {
    const endpoint = readEndpoint(paths.dir);
    if (!endpoint) {
      if (Date.now() < until) setTimeout(() => serveHttps(until), 50).unref();
      return;
    }
    httpsRelay.once('error', (e) => note(`cannot serve the API on ${API_HOST}:${endpoint.port}: ${e.message}`));
    httpsRelay.listen(endpoint.port, API_HOST);
  };

  const guest = new FrameReader(
    (f: Frame) => {
      if (f.t === 'ready') {
        rmSync(paths.socket, { force: true });
        rmSync(apiSocket, { force: true });
        apiRelay.listen(apiSocket);
        serveHttps(Date.now() + 60_000);
        server.listen(paths.socket, () => note('guest ready'));
        return;
      }
      if (!('s' in f) || f.s === undefined) return;
      const stream = streams.get(f.s);
      if (stream) {
        if (f.t === 'out') stream.write(Buffer.from(f.d, 'base64'));
        else if (f.t === 'exit' && streams.delete(f.s)) stream.end();
        return;
      }
      const socket = clients.get(f.s);
      if (!socket) return;
      const { s: _s, ...frame } = f;
      socket.write(encodeFrame(frame as Frame));
      if (f.t === 'exit') {
        clients.delete(f.s);
        socket.end();
      }
    },
    (line) => note(`guest: ${line}`),
  );
  fromGuest.on('data', (b: Buffer) => guest.push(b));

  process.on('SIGTERM', () => {
    note('powering the kernel off');
    toGuest.write(encodeFrame({ t: 'poweroff' }));
    setTimeout(() => {
      note('the kernel did not power off: killing it');
      try {
        process.kill(-kernelPid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }, 10_000).unref();
  });

  await new Promise<void>((resolve) => kernel.on('exit', () => resolve()));
  note('kernel stopped');
  server.close();
  apiRelay.close();
  httpsRelay.close();
  rmSync(paths.socket, { force: true });
  rmSync(apiSocket, { force: true });
  for (const stream of streams.values()) stream.destroy();
  for (const socket of clients.values()) socket.end(encodeFrame({ t: 'exit', code: 255, error: `the kernel of cluster ${cluster} stopped` }));
  // The kernel's own helper processes share its group: none outlives it.
  try {
    process.kill(-kernelPid, 'SIGKILL');
  } catch {
    // all gone
  }
}
