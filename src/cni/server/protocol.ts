// The wire between the C shim (native/cni-shim.c) and the plugin server: one CNI call per
// connection. Pure encoding and decoding; the layout is described in the shim's header.
//   request:  "KWCNI1\n" u32 n, n bytes of records (tag byte, NUL-terminated string), u32 m, m bytes of stdin
//   answer:   'A' (call taken), then 'R' i32 code, u32 + stdout, u32 + stderr; or 'F' (declined: the shim runs the plugin itself)

export const MAGIC = Buffer.from('KWCNI1\n');
/** Requests beyond these are refused: a runtime's configuration is kilobytes. */
export const MAX_RECORDS_BYTES = 1 << 20;
export const MAX_STDIN_BYTES = 64 << 20;

export const TAKEN = Buffer.from('A');
export const DECLINED = Buffer.from('F');

export interface ShimRequest {
  plugin: string;
  pid: number;
  /** "dev:ino" of the caller's network namespace (its host, as the spec sees it). */
  netns: string;
  /** "dev:ino" of the caller's mount namespace: its paths are ours only when it equals ours. */
  mntns: string;
  cwd: string;
  env: Record<string, string>;
  stdin: Buffer;
}

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** The request in `buf`, or undefined while bytes are missing; throws on a malformed or oversized one. */
export function decodeRequest(buf: Buffer): ShimRequest | undefined {
  const head = Math.min(buf.length, MAGIC.length);
  if (!buf.subarray(0, head).equals(MAGIC.subarray(0, head))) throw new ProtocolError('not a kubewire CNI shim request');
  if (buf.length < MAGIC.length + 4) return undefined;
  const n = buf.readUInt32LE(MAGIC.length);
  if (n > MAX_RECORDS_BYTES) throw new ProtocolError(`request records of ${n} bytes (at most ${MAX_RECORDS_BYTES})`);
  const recordsEnd = MAGIC.length + 4 + n;
  if (buf.length < recordsEnd + 4) return undefined;
  const m = buf.readUInt32LE(recordsEnd);
  if (m > MAX_STDIN_BYTES) throw new ProtocolError(`stdin of ${m} bytes (at most ${MAX_STDIN_BYTES})`);
  if (buf.length < recordsEnd + 4 + m) return undefined;
  if (buf.length > recordsEnd + 4 + m) throw new ProtocolError('bytes after the request');
  const req: ShimRequest = { plugin: '', pid: 0, netns: '', mntns: '', cwd: '', env: {}, stdin: Buffer.from(buf.subarray(recordsEnd + 4)) };
  let at = MAGIC.length + 4;
  while (at < recordsEnd) {
    const end = buf.indexOf(0, at + 1);
    if (end < 0 || end >= recordsEnd) throw new ProtocolError('a request record is not NUL-terminated');
    const tag = String.fromCharCode(buf[at]!);
    const value = buf.toString('utf8', at + 1, end);
    at = end + 1;
    switch (tag) {
      case 'P': req.plugin = value; break;
      case 'I': req.pid = Number(value); break;
      case 'N': req.netns = value; break;
      case 'M': req.mntns = value; break;
      case 'C': req.cwd = value; break;
      case 'E': {
        const eq = value.indexOf('=');
        if (eq > 0) req.env[value.slice(0, eq)] = value.slice(eq + 1);
        break;
      }
      default: // a record of a newer shim: ignored
    }
  }
  if (!req.plugin || !Number.isInteger(req.pid) || req.pid <= 0) throw new ProtocolError('a request without its plugin name or pid');
  return req;
}

/** What a client sends (the shim's encoding, for tests and Node clients). */
export function encodeRequest(req: ShimRequest): Buffer {
  const records: Buffer[] = [];
  const rec = (tag: string, value: string): void => void records.push(Buffer.from(`${tag}${value}\0`));
  rec('P', req.plugin);
  rec('I', String(req.pid));
  rec('N', req.netns);
  rec('M', req.mntns);
  rec('C', req.cwd);
  for (const [k, v] of Object.entries(req.env)) rec('E', `${k}=${v}`);
  const body = Buffer.concat(records);
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  return Buffer.concat([MAGIC, u32(body.length), body, u32(req.stdin.length), req.stdin]);
}

/** The result of a call taken: exit code, stdout, stderr. */
export function encodeAnswer(code: number, stdout: string, stderr: string): Buffer {
  const out = Buffer.from(stdout);
  const err = Buffer.from(stderr);
  const head = Buffer.alloc(9);
  head.write('R', 0);
  head.writeInt32LE(code, 1);
  head.writeUInt32LE(out.length, 5);
  const errLen = Buffer.alloc(4);
  errLen.writeUInt32LE(err.length);
  return Buffer.concat([head, out, errLen, err]);
}

export interface Answer {
  taken: boolean;
  code?: number;
  stdout?: string;
  stderr?: string;
}

/** A whole answer as the shim reads it (for tests and Node clients); undefined while incomplete. */
export function decodeAnswer(buf: Buffer): Answer | undefined {
  if (!buf.length) return undefined;
  if (buf[0] === DECLINED[0]) return { taken: false };
  if (buf[0] !== TAKEN[0]) throw new ProtocolError('an answer that starts with neither A nor F');
  if (buf.length < 10) return undefined;
  if (buf[1] !== 'R'.charCodeAt(0)) throw new ProtocolError('an answer without its result');
  const code = buf.readInt32LE(2);
  const outLen = buf.readUInt32LE(6);
  if (buf.length < 10 + outLen + 4) return undefined;
  const errLen = buf.readUInt32LE(10 + outLen);
  if (buf.length < 14 + outLen + errLen) return undefined;
  return { taken: true, code, stdout: buf.toString('utf8', 10, 10 + outLen), stderr: buf.toString('utf8', 14 + outLen, 14 + outLen + errLen) };
}
