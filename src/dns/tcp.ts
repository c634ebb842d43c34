// DNS over TCP (RFC 7766), bounded as CoreDNS bounds it. CoreDNS (core/dnsserver/server.go,
// NewServer) gives miekg/dns a read timeout of 3 s (the first query must have come whole
// within it), an idle timeout of 10 s (each later query within it of the one before) and a
// write timeout of 5 s (an answer the client does not take within it ends the connection);
// miekg/dns's own defaults are 2 s, 8 s (RFC 5966) and 2 s. A goroutine there answers one
// query at a time and blocks on a client that does not read, so nothing piles up; here the
// same is done by hand: queries are answered in turn, reading stops while more than
// MAX_UNSENT bytes of answers wait for the client (or MAX_UNREAD bytes of queries wait for
// us), and a client that does not drain its answers within the write timeout is closed.
// CoreDNS caps connections only for gRPC (DefaultGRPCMaxConnections 200, server_grpc.go);
// here plain TCP has a cap too (maxConnections: Node drops the connections above it at once):
// an open connection costs about 5 KB here (measured), 20 MB at the cap. The cap stays above
// what the read timeout lets a slow client hold, so that a slowloris meets the timeout, not a
// churn of dropped and reopened connections. Nothing of a connection outlives it.

import type { Socket } from 'node:net';

export interface TcpLimits {
  readTimeoutMs: number;
  idleTimeoutMs: number;
  writeTimeoutMs: number;
  /** Bytes of answers queued for a client before we stop reading its queries. */
  maxUnsent: number;
  /** Bytes of queries received and not yet answered before we stop reading. */
  maxUnread: number;
  maxConnections: number;
}

export const COREDNS_TCP_LIMITS: TcpLimits = {
  readTimeoutMs: 3_000,
  idleTimeoutMs: 10_000,
  writeTimeoutMs: 5_000,
  maxUnsent: 64 << 10,
  maxUnread: 64 << 10,
  maxConnections: 4_096,
};

/** Queries of one connection answered before the event loop gets a turn. */
const TURN = 16;

export type Frame = { query: Buffer; rest: Buffer } | { close: true } | undefined;

/**
 * The next length-prefixed message of `buf` (pure): the query and what follows it, undefined
 * while it is incomplete, or close for a zero length (miekg/dns's ReadTCP: ErrShortRead).
 */
export function nextFrame(buf: Buffer): Frame {
  if (buf.length < 2) return undefined;
  const length = buf.readUInt16BE(0);
  if (length === 0) return { close: true };
  if (buf.length < 2 + length) return undefined;
  return { query: buf.subarray(2, 2 + length), rest: buf.subarray(2 + length) };
}

/** Whether to read more of a connection (pure): not while answers wait for the client or queries wait for us. */
export function mayRead(unread: number, unsent: number, limits: TcpLimits): boolean {
  return unread <= limits.maxUnread && unsent <= limits.maxUnsent;
}

/** Serves one connection: queries answered one at a time, in order, within the limits above. */
export function serveConnection(socket: Socket, answer: (query: Buffer) => Promise<Buffer | undefined>, limits: TcpLimits): void {
  let unread: Buffer = Buffer.alloc(0);
  let busy = false;
  let timer: NodeJS.Timeout | undefined;
  const deadline = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => socket.destroy(), ms);
  };
  const flow = () => {
    if (mayRead(unread.length, socket.writableLength, limits)) socket.resume();
    else socket.pause();
  };
  const pump = async () => {
    if (busy) return;
    busy = true;
    try {
      for (let f = nextFrame(unread), n = 1; f && !socket.destroyed; f = nextFrame(unread), n++) {
        if ('close' in f) return void socket.destroy();
        // Copied: the query must not keep the whole chunk it came in alive.
        const query = Buffer.from(f.query);
        unread = f.rest.length ? f.rest : Buffer.alloc(0);
        deadline(limits.idleTimeoutMs); // a whole query came: the next one has the idle timeout
        const out = await answer(query).catch(() => undefined); // a failure to answer one query ends nothing else
        if (socket.destroyed) return;
        if (out) socket.write(Buffer.concat([Buffer.from([out.length >> 8, out.length & 0xff]), out]));
        if (socket.writableLength > limits.maxUnsent) {
          // The client is not reading: no more answers until it does, closed if it does not in time.
          socket.pause();
          deadline(limits.writeTimeoutMs);
          await new Promise<void>((resolve) => {
            const done = () => {
              socket.off('drain', done);
              socket.off('close', done);
              resolve();
            };
            socket.on('drain', done);
            socket.on('close', done);
          });
          if (socket.destroyed) return;
          deadline(limits.idleTimeoutMs);
        }
        // A turn of the event loop every few queries: a pipelining client shares the server with the rest.
        if (n % TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      busy = false;
      if (!socket.destroyed) flow();
    }
  };
  deadline(limits.readTimeoutMs);
  socket.on('data', (b: Buffer) => {
    unread = unread.length ? Buffer.concat([unread, b]) : b;
    flow();
    void pump();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    clearTimeout(timer);
    unread = Buffer.alloc(0);
  });
}
