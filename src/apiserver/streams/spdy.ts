// SPDY/3.1 as Kubernetes streams use it (moby/spdystream, what kubectl's exec fallback and
// port-forward speak): a connection of bidirectional streams, each opened by a SYN_STREAM
// whose headers (zlib with SPDY/3's dictionary, one compression context per direction) say
// what it is (`streamtype: error|data|stdin|...`, `port`, `requestid`), answered by a
// SYN_REPLY, carried by DATA frames, ended by FIN or RST_STREAM.
//
// Why not spdy-transport: its server treats SPDY as HTTP and refuses every SYN_STREAM without
// `:method` and `:path` (protocol/spdy/parser.js), which no Kubernetes stream carries. Its
// dictionary is SPDY/3's and is used here. Flow control is not enforced in either direction,
// as spdystream (the kubelet's own side) does not; a full reader pauses the connection instead.
//
// Frames (draft-mbelshe-httpbis-spdy-00): control = 1 | version(15) | type(16) | flags(8) |
// length(24) | body; data = 0 | stream-id(31) | flags(8) | length(24) | payload.

import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { constants as zc, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';

const dictionaries = createRequire(import.meta.url)('spdy-transport/lib/spdy-transport/protocol/spdy/dictionary.js') as Record<number, Buffer>;
export const SPDY3_DICTIONARY: Buffer = dictionaries[3]!;

export const VERSION = 3;
export const SYN_STREAM = 1;
export const SYN_REPLY = 2;
export const RST_STREAM = 3;
export const SETTINGS = 4;
export const PING = 6;
export const GOAWAY = 7;
export const HEADERS = 8;
export const WINDOW_UPDATE = 9;
export const FLAG_FIN = 0x01;
/** RST_STREAM status codes. */
export const PROTOCOL_ERROR = 1;
export const CANCEL = 5;
/** Largest frame accepted (length is 24 bits; spdystream writes at most 16 MiB too). */
const MAX_FRAME = 1 << 24;

export class SpdyError extends Error {
  override name = 'SpdyError';
}

export type Frame =
  | { control: false; streamId: number; flags: number; data: Buffer }
  | { control: true; type: number; flags: number; body: Buffer };

export function encodeData(streamId: number, data: Buffer, flags = 0): Buffer {
  if (data.length >= MAX_FRAME) throw new SpdyError(`a DATA frame of ${data.length} bytes is too large`);
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head.writeUInt32BE(((flags & 0xff) << 24) | data.length, 4);
  return Buffer.concat([head, data]);
}

export function encodeControl(type: number, flags: number, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(8);
  head.writeUInt16BE(0x8000 | VERSION, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(((flags & 0xff) << 24) | body.length, 4);
  return Buffer.concat([head, body]);
}

/** The frames complete in `buf` and the bytes left over (pure). */
export function decodeFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let off = 0;
  while (buf.length - off >= 8) {
    const length = buf.readUInt32BE(off + 4) & 0xffffff;
    if (buf.length - off < 8 + length) break;
    const flags = buf[off + 4]!;
    const payload = buf.subarray(off + 8, off + 8 + length);
    if (buf[off]! & 0x80) {
      const version = buf.readUInt16BE(off) & 0x7fff;
      if (version !== VERSION) throw new SpdyError(`SPDY version ${version} is not supported (only 3)`);
      frames.push({ control: true, type: buf.readUInt16BE(off + 2), flags, body: payload });
    } else {
      frames.push({ control: false, streamId: buf.readUInt32BE(off) & 0x7fffffff, flags, data: payload });
    }
    off += 8 + length;
  }
  return { frames, rest: buf.subarray(off) };
}

/** An uncompressed SPDY/3 header block: count, then length-prefixed names and values (pure). */
export function encodeHeaderBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const entries = Object.entries(headers);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(entries.length);
  parts.push(count);
  for (const [k, v] of entries) {
    for (const s of [k.toLowerCase(), v]) {
      const b = Buffer.from(s);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      parts.push(len, b);
    }
  }
  return Buffer.concat(parts);
}

/** An uncompressed header block's names (lower case) and values (several joined by NUL kept as the first) (pure). */
export function decodeHeaderBlock(block: Buffer): Record<string, string> {
  const fail = () => new SpdyError('malformed SPDY header block');
  if (block.length < 4) throw fail();
  let off = 4;
  const count = block.readUInt32BE(0);
  const out: Record<string, string> = {};
  const read = (): string => {
    if (block.length - off < 4) throw fail();
    const len = block.readUInt32BE(off);
    off += 4;
    if (block.length - off < len) throw fail();
    const s = block.subarray(off, off + len).toString();
    off += len;
    return s;
  };
  if (count > block.length) throw fail();
  for (let i = 0; i < count; i++) {
    const name = read().toLowerCase();
    out[name] = read().split('\0')[0]!;
  }
  return out;
}

export function synStreamFields(body: Buffer): { streamId: number; headerBlock: Buffer } {
  if (body.length < 10) throw new SpdyError('SYN_STREAM frame too short');
  return { streamId: body.readUInt32BE(0) & 0x7fffffff, headerBlock: body.subarray(10) };
}

export function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

/** One direction's zlib context: header blocks are compressed as one stream, each flushed. */
class HeaderZ {
  private chunks: Buffer[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  constructor(private readonly z: Inflate | Deflate) {
    z.on('data', (c: Buffer) => this.chunks.push(c));
    z.on('error', () => undefined); // reported through run()
  }
  run(input: Buffer): Promise<Buffer> {
    const next = this.queue.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          const onError = (e: Error) => reject(new SpdyError(`SPDY header compression: ${e.message}`));
          this.z.once('error', onError);
          this.z.write(input);
          this.z.flush(zc.Z_SYNC_FLUSH, () => {
            this.z.off('error', onError);
            const out = Buffer.concat(this.chunks);
            this.chunks = [];
            resolve(out);
          });
        }),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }
  close(): void {
    this.z.close();
  }
}

/** One SPDY stream: written bytes go out as DATA, end() as FIN; received DATA is read. */
export class SpdyStream extends Duplex {
  private remoteEnded = false;
  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: Record<string, string>,
  ) {
    super({ allowHalfOpen: true });
  }
  override _read(): void {
    this.session.resumeInput();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.session.send(encodeData(this.id, chunk)).then(() => cb(), cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.session.send(encodeData(this.id, Buffer.alloc(0), FLAG_FIN)).then(() => cb(), cb);
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.remoteEnded || !this.writableFinished) void this.session.send(encodeControl(RST_STREAM, 0, u32s(this.id, CANCEL))).catch(() => undefined);
    this.session.forget(this.id);
    cb(err);
  }
  /** @internal DATA from the peer. */
  receive(data: Buffer, fin: boolean): boolean {
    let more = true;
    if (data.length) more = this.push(data);
    if (fin) {
      this.remoteEnded = true;
      this.push(null);
    }
    return more;
  }
  /** @internal the peer reset the stream. */
  reset(): void {
    this.remoteEnded = true;
    this.destroy();
  }
}

/**
 * The server's end of a SPDY/3.1 connection over `transport` (a socket, or a WebSocket's
 * messages as a stream). Each stream the peer opens is answered with an empty SYN_REPLY and
 * handed to `onStream`. Ends when the transport does.
 */
export class SpdySession {
  private readonly streams = new Map<number, SpdyStream>();
  private readonly inflate = new HeaderZ(createInflate({ dictionary: SPDY3_DICTIONARY }));
  private readonly deflate = new HeaderZ(createDeflate({ dictionary: SPDY3_DICTIONARY, windowBits: 11 }));
  private rest: Buffer = Buffer.alloc(0);
  private input: Promise<void> = Promise.resolve();
  private output: Promise<void> = Promise.resolve();
  private closed = false;
  private lastStream = 0;
  /** Each stream the peer opens, once answered (set right after construction, before any frame is read). */
  onStream: (s: SpdyStream) => void = (s) => s.destroy();

  constructor(
    private readonly transport: Duplex,
    private readonly onClose: (why?: Error) => void = () => undefined,
  ) {
    transport.on('data', (chunk: Buffer) => {
      const buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
      let decoded: ReturnType<typeof decodeFrames>;
      try {
        decoded = decodeFrames(buf);
      } catch (e) {
        return this.close(e as Error);
      }
      this.rest = decoded.rest;
      if (this.rest.length > MAX_FRAME + 8) return this.close(new SpdyError('SPDY frame too large'));
      for (const f of decoded.frames) this.input = this.input.then(() => this.handle(f)).catch((e: Error) => this.close(e));
    });
    transport.on('end', () => this.close());
    transport.on('close', () => this.close());
    transport.on('error', (e) => this.close(e));
  }

  /** Frames go out in order: a SYN_REPLY waits for its compression, the DATA after it waits too. */
  send(frame: Buffer | Promise<Buffer>): Promise<void> {
    const next = this.output.then(async () => {
      const buf = await frame;
      if (this.closed) throw new SpdyError('the SPDY connection is closed');
      if (!this.transport.write(buf)) await new Promise<void>((r) => { this.transport.once('drain', r); this.transport.once('close', r); });
    });
    this.output = next.catch(() => undefined);
    return next;
  }

  /** @internal a stream's reader wants more: resume a paused connection. */
  resumeInput(): void {
    if (this.transport.isPaused()) this.transport.resume();
  }

  /** @internal a stream is done. */
  forget(id: number): void {
    this.streams.delete(id);
  }

  close(why?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.destroy();
    this.streams.clear();
    this.inflate.close();
    this.deflate.close();
    if (why && !this.transport.destroyed) this.transport.end(encodeControl(GOAWAY, 0, u32s(this.lastStream, PROTOCOL_ERROR)));
    else this.transport.end();
    this.onClose(why);
  }

  private async handle(f: Frame): Promise<void> {
    if (this.closed) return;
    if (!f.control) {
      const s = this.streams.get(f.streamId);
      if (!s) return; // a stream already reset: its late DATA is dropped
      if (!s.receive(f.data, (f.flags & FLAG_FIN) !== 0)) this.transport.pause();
      return;
    }
    switch (f.type) {
      case SYN_STREAM: {
        const { streamId, headerBlock } = synStreamFields(f.body);
        const headers = decodeHeaderBlock(await this.inflate.run(headerBlock));
        if (streamId % 2 === 0 || streamId <= this.lastStream) throw new SpdyError(`SPDY stream id ${streamId} is not a new client stream`);
        this.lastStream = streamId;
        const s = new SpdyStream(this, streamId, headers);
        this.streams.set(streamId, s);
        await this.send(this.deflate.run(encodeHeaderBlock({})).then((block) => encodeControl(SYN_REPLY, 0, Buffer.concat([u32s(streamId), block]))));
        if (f.flags & FLAG_FIN) s.receive(Buffer.alloc(0), true);
        this.onStream(s);
        return;
      }
      case HEADERS:
        // Headers after the stream opened: decompressed to keep the context in step, then ignored.
        await this.inflate.run(f.body.subarray(4));
        return;
      case RST_STREAM:
        if (f.body.length >= 4) this.streams.get(f.body.readUInt32BE(0) & 0x7fffffff)?.reset();
        return;
      case PING:
        await this.send(encodeControl(PING, 0, f.body));
        return;
      case GOAWAY:
        return this.close();
      default:
        return; // SETTINGS, WINDOW_UPDATE, SYN_REPLY: nothing to do as this server
    }
  }
}
