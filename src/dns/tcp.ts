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

/** Queries of one connection handed over at once (the server answers them in its sources' turns, fair.ts). */
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

// Connections whose deadline passed are closed a few per turn of the event loop: a slowloris's
// connections come in waves and time out together (1,500 at once), and closing them in one
// timers phase held every UDP answer behind them (67 ms in process at p99).
const expired: Socket[] = [];
const CLOSES_PER_TURN = 32;
function reap(): void {
  for (const s of expired.splice(0, CLOSES_PER_TURN)) s.destroy();
  if (expired.length) setImmediate(reap);
}
function expire(socket: Socket): void {
  if (expired.push(socket) === 1) setImmediate(reap);
}

/** Serves one connection: queries answered one at a time, in order, within the limits above. */
export function serveConnection(socket: Socket, answer: (query: Buffer) => Promise<Buffer | undefined>, limits: TcpLimits): void {
  // What came and is not parsed yet: the chunk being parsed, and the chunks after it, kept as
  // they came (joining each chunk to all that waits would copy up to maxUnread bytes a read).
  let unread: Buffer = Buffer.alloc(0);
  const later: Buffer[] = [];
  let laterBytes = 0;
  /** The next frame; a frame split across chunks joins the chunk's tail (under 64 KiB) to the next. */
  const next = (): Frame => {
    for (;;) {
      const f = nextFrame(unread);
      if (f || !later.length) return f;
      const b = later.shift()!;
      laterBytes -= b.length;
      unread = unread.length ? Buffer.concat([unread, b]) : b;
    }
  };
  let busy = false;
  let timer: NodeJS.Timeout | undefined;
  const deadline = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => expire(socket), ms);
  };
  const flow = () => {
    if (mayRead(unread.length + laterBytes, socket.writableLength, limits)) socket.resume();
    else socket.pause();
  };
  const pump = async () => {
    if (busy) return;
    busy = true;
    try {
      while (!socket.destroyed) {
        // Up to TURN whole queries at once: they wait for their turn together (the caller's
        // queue), and their answers go out in order in one write.
        const queries: Buffer[] = [];
        for (let f = next(); f && queries.length < TURN; f = next()) {
          if ('close' in f) return void socket.destroy();
          // Copied: the query must not keep the whole chunk it came in alive.
          queries.push(Buffer.from(f.query));
          unread = f.rest.length ? f.rest : Buffer.alloc(0);
        }
        if (!queries.length) return;
        deadline(limits.idleTimeoutMs); // a whole query came: the next one has the idle timeout
        // A failure to answer one query ends nothing else.
        const outs = await Promise.all(queries.map((q) => answer(q).catch(() => undefined)));
        if (socket.destroyed) return;
        const framed: Buffer[] = [];
        for (const out of outs) if (out) framed.push(Buffer.from([out.length >> 8, out.length & 0xff]), out);
        if (framed.length) socket.write(Buffer.concat(framed));
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
      }
    } finally {
      busy = false;
      if (!socket.destroyed) flow();
    }
  };
  deadline(limits.readTimeoutMs);
  socket.on('data', (b: Buffer) => {
    if (unread.length || later.length) {
      later.push(b);
      laterBytes += b.length;
    } else unread = b;
    flow();
    void pump();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    clearTimeout(timer);
    unread = Buffer.alloc(0);
    later.length = laterBytes = 0;
  });
}
