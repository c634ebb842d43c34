// HTTP/1.1 message heads and chunked bodies, as the proxy's fast path reads and writes them
// (RFC 9112). Pure functions over strings and buffers. Only the common, unambiguous shapes
// are accepted; anything else is left to Node's own HTTP server (see proxy.ts), which then
// owns the connection.

/** Hop-by-hop headers (RFC 9110 7.6.1), never forwarded; nor `proxy` (httpoxy). */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'proxy']);
/** What the proxy sets itself; a client's values are dropped unless trusted. */
export const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-proto', 'x-forwarded-scheme', 'x-scheme', 'x-real-ip', 'x-original-forwarded-for', 'x-request-id']);

export const MAX_HEAD = 64 * 1024;
/** The blank line that ends a head (a Buffer: searching with a string needle converts it every time). */
export const HEAD_END = Buffer.from('\r\n\r\n');
// A line ends in LF, with or without CR before it, as nginx reads requests: the blank line
// that ends a head is then LF LF or LF CR LF (CRLF CRLF holds the latter).
const LF_LF = Buffer.from('\n\n');
const LF_CRLF = Buffer.from('\n\r\n');
/** A CR followed by neither LF nor CR (nginx: an invalid request, 400). */
const BARE_CR = /\r[^\r\n]/;

/** Where a request head ends in a buffer. */
export interface HeadBounds {
  /** The head's text ends here (its last line's terminator excluded). */
  text: number;
  /** The head's lines with the last one's terminator (the empty line excluded). */
  lines: number;
  /** The first byte after the empty line (the body's or the next request's). */
  total: number;
  /** The last line and the empty one ended in CRLF (parseRequestHead tells of the others). */
  crlf: boolean;
}

/**
 * Where the head at the front of `buf` ends (pure): its bounds; undefined while it is
 * incomplete; 'bare CR' when a CR is followed by neither LF nor CR, which nginx answers
 * with 400 at once (a head that could never end must not wait for the idle timeout).
 * Native searches only, no loop per line: a head arriving in many pieces is searched again
 * at each, and one of 64 KiB of empty-ish lines must cost what it did with CRLF alone.
 */
export function findHeadEnd(buf: Buffer): HeadBounds | 'bare CR' | undefined {
  const a = buf.indexOf(LF_LF);
  const b = buf.indexOf(LF_CRLF);
  const at = a < 0 ? b : b < 0 ? a : Math.min(a, b);
  if (at < 0) return BARE_CR.test(buf.toString('latin1')) ? 'bare CR' : undefined;
  const cr = at > 0 && buf[at - 1] === 13;
  return { text: cr ? at - 1 : at, lines: at + 1, total: at + (at === b ? 3 : 2), crlf: cr && at === b };
}

const KEEP_ALIVE: ReadonlySet<string> = new Set(['keep-alive']);
const CLOSE: ReadonlySet<string> = new Set(['close']);

/** The tokens of a Connection header, lowercased: `close`, `keep-alive`, or names of more hop-by-hop headers. */
export function connectionTokens(value: string): ReadonlySet<string> {
  const v = value.trim().toLowerCase();
  if (v === 'keep-alive') return KEEP_ALIVE; // what nearly every message says
  if (v === 'close') return CLOSE;
  return new Set(v.split(',').map((s) => s.trim()));
}

export interface RequestHead {
  method: string;
  target: string;
  /** Raw header lines' names and values, in order. */
  names: string[];
  values: string[];
  host: string;
  contentLength: number;
  /** Header names the Connection header lists (hop-by-hop as well). */
  connection?: ReadonlySet<string>;
  /** Values the forwarding headers need, if the client sent them. */
  forwardedFor?: string;
  requestId?: string;
  referer?: string;
  userAgent?: string;
  claimed: Record<string, string>;
  /** The client asked to close after this exchange. */
  close: boolean;
  /** No header line is to be dropped: the head may go on as received, ours appended. */
  plain: boolean;
  /** The request has a second Host header (the first is kept in `host`). */
  twoHosts?: boolean;
}

/** A CR or LF that is not part of a CRLF: the head needs the lenient reading below. */
const NOT_CRLF = /\r(?!\n)|(?<!\r)\n/;

/**
 * A head's lines as nginx reads them (pure): each ends in LF, the request line's with one CR
 * before it or none, a header line's with any number; any other CR is a bare one (400).
 * `bareLF`: a line ended without CR.
 */
function looseLines(text: string): { lines: string[]; bareLF: boolean } | 'bare CR' {
  const lines = text.split('\n');
  let bareLF = false;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = i === 0 ? line.slice(0, -1) : line.replace(/\r+$/, '');
    else if (i < lines.length - 1) bareLF = true;
    if (line.includes('\r')) return 'bare CR';
    lines[i] = line;
  }
  return { lines, bareLF };
}

const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TOKEN_LINE = /^([A-Z]+) (\S+) HTTP\/1\.1$/;

/**
 * Parses a request head (without its last line's end and the empty line; lines end in LF or
 * CRLF, see findHeadEnd). Returns a string naming why the fast path should not take the
 * request (Node's HTTP server will; it answers a bare CR with 400, as nginx does), or the head.
 */
export function parseRequestHead(text: string): RequestHead | string {
  // CRLF throughout (nearly every client): split as ever; else read as nginx reads.
  let lines: string[];
  let bareLF = false;
  if (NOT_CRLF.test(text)) {
    const loose = looseLines(text);
    if (typeof loose === 'string') return loose;
    ({ lines, bareLF } = loose);
  } else lines = text.split('\r\n');
  const m = TOKEN_LINE.exec(lines[0]!);
  if (!m) return 'request line';
  // A head with bare LF ends is rebuilt in CRLF for the endpoint (Node's parser, for one, refuses bare LF).
  const head: RequestHead = { method: m[1]!, target: m[2]!, names: [], values: [], host: '', contentLength: 0, claimed: {}, close: false, plain: !bareLF };
  let lengthSeen = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    // Not a token (a space before the colon, a folded line...): a backend might read it otherwise.
    if (colon <= 0 || !FIELD_NAME.test(name)) return 'header line';
    const lower = name.toLowerCase();
    const value = line.slice(colon + 1).trim();
    switch (lower) {
      case 'host':
        if (head.host) head.twoHosts = true; // nginx: 400, "client sent duplicate host header"
        else head.host = value;
        break;
      case 'content-length':
        if (lengthSeen || !/^\d{1,15}$/.test(value)) return 'content-length';
        lengthSeen = true;
        head.contentLength = Number(value);
        break;
      case 'transfer-encoding':
      case 'expect':
      case 'upgrade':
        return lower;
      case 'connection':
        head.connection = connectionTokens(value);
        if (head.connection.has('close')) head.close = true;
        break;
      case 'x-forwarded-for':
        head.forwardedFor = head.forwardedFor ? `${head.forwardedFor}, ${value}` : value;
        break;
      case 'x-request-id':
        head.requestId = value;
        break;
      case 'referer':
        head.referer = value;
        break;
      case 'user-agent':
        head.userAgent = value;
        break;
    }
    if (HOP_BY_HOP.has(lower)) head.plain = false;
    else if (FORWARDED.has(lower)) {
      head.claimed[lower] = value;
      head.plain = false;
    }
    head.names.push(name);
    head.values.push(value);
  }
  if (!head.host) return 'no Host header';
  return head;
}

/** A request header's value by lowercased name (the first, if repeated). */
export function headerOf(head: RequestHead, name: string): string | undefined {
  for (let i = 0; i < head.names.length; i++) if (head.names[i]!.toLowerCase() === name) return head.values[i];
  return undefined;
}

export interface ResponseHead {
  status: number;
  reason: string;
  /** The header lines to pass on (each ending in CRLF): hop-by-hop ones removed, Transfer-Encoding kept (chunked bodies pass through as framed). */
  fields: string;
  /** -1: chunked; -2: until the connection closes; else the body's length. */
  length: number;
  /** The endpoint will close the connection after this response. */
  close: boolean;
  contentLength?: string;
}

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: ([^\r\n]*))?$/;
const FIELD_LINES = /^(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r\n)*$/;
const DIGITS = /^\d{1,15}$/;
/** First letters of the header names parseResponseHead must look at (connection, content-length, keep-alive, proxy-*, te, trailer, transfer-encoding, upgrade). */
const NOTABLE = new Set([...'cCkKpPtTuU']);

/**
 * Parses a response head: the status line and header lines, each ending in CRLF (the
 * blank line excluded). `noBody` for responses to HEAD (204 and 304 are found here).
 * Undefined when it is not a well-formed HTTP/1.x response. It runs for every response:
 * one check of the whole field block, then only the lines whose name may matter are read.
 */
export function parseResponseHead(text: string, noBody: boolean): ResponseHead | undefined {
  const eol = text.indexOf('\r\n');
  const m = STATUS_LINE.exec(text.slice(0, eol));
  if (!m) return undefined;
  const block = text.slice(eol + 2);
  if (!FIELD_LINES.test(block)) return undefined;
  const status = Number(m[2]);
  let fields = '';
  let kept = 0; // block[kept, at) is passed on as it is
  let contentLength: string | undefined;
  let chunked = false;
  let connection: ReadonlySet<string> | undefined;
  let listed = false; // the Connection header names other headers: a second pass drops them
  for (let at = 0; at < block.length; ) {
    const next = block.indexOf('\r\n', at) + 2;
    if (!NOTABLE.has(block[at]!)) {
      at = next;
      continue;
    }
    const colon = block.indexOf(':', at);
    const lower = block.slice(at, colon).toLowerCase();
    if (lower === 'content-length') {
      const v = block.slice(colon + 1, next - 2).trim();
      if (!DIGITS.test(v) || (contentLength !== undefined && v !== contentLength)) return undefined;
      contentLength = v;
    } else if (lower === 'transfer-encoding') chunked = block.slice(colon + 1, next - 2).trim().toLowerCase().endsWith('chunked');
    else if (lower === 'connection') {
      connection = connectionTokens(block.slice(colon + 1, next - 2));
      for (const token of connection) if (token !== 'close' && token !== 'keep-alive' && !HOP_BY_HOP.has(token)) listed = true;
    }
    if (lower !== 'transfer-encoding' && HOP_BY_HOP.has(lower)) {
      fields += block.slice(kept, at);
      kept = next;
    }
    at = next;
  }
  fields += block.slice(kept);
  // Names the Connection header lists are hop-by-hop too.
  if (listed) fields = fields.split(/(?<=\r\n)/).filter((l) => !connection!.has(l.slice(0, l.indexOf(':')).toLowerCase())).join('');
  let close = m[1] === '0' ? !connection?.has('keep-alive') : Boolean(connection?.has('close'));
  let length: number;
  if (noBody || status === 204 || status === 304 || (status >= 100 && status < 200)) length = 0;
  else if (chunked) {
    length = -1;
    contentLength = undefined; // Transfer-Encoding overrides it (RFC 9112 6.3)
    fields = fields.replace(/^content-length[ \t]*:[^\r\n]*\r\n/gim, '');
  } else if (contentLength !== undefined) length = Number(contentLength);
  else {
    length = -2;
    close = true; // delimited by the close
  }
  return { status, reason: m[3] ?? '', fields, length, close, contentLength };
}

/**
 * Walks a chunked body (RFC 9112 7.1) as bytes arrive and tells where it ends; the bytes
 * themselves are passed on unchanged. Chunk extensions and trailers are skipped over.
 */
export class ChunkedScanner {
  private state: 'size' | 'data' | 'data-crlf' | 'trailer' = 'size';
  private line = '';
  private left = 0;
  done = false;

  /** Consumes `buf`; returns how many bytes belong to the body (all of it unless the body ended inside). Throws on a malformed body. */
  scan(buf: Buffer): number {
    let i = 0;
    while (i < buf.length && !this.done) {
      if (this.state === 'data') {
        const n = Math.min(this.left, buf.length - i);
        i += n;
        this.left -= n;
        if (!this.left) this.state = 'data-crlf';
        continue;
      }
      const c = buf[i++]!;
      if (c !== 10) {
        if (c !== 13) this.line += String.fromCharCode(c);
        if (this.line.length > 1024) throw new Error('chunk line too long');
        continue;
      }
      const line = this.line;
      this.line = '';
      if (this.state === 'size') {
        const size = parseInt(line.split(';')[0]!.trim(), 16);
        if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+$/.test(line.split(';')[0]!.trim())) throw new Error(`bad chunk size ${JSON.stringify(line)}`);
        if (size === 0) this.state = 'trailer';
        else {
          this.left = size;
          this.state = 'data';
        }
      } else if (this.state === 'data-crlf') {
        if (line !== '') throw new Error('chunk not followed by CRLF');
        this.state = 'size';
      } else if (line === '') this.done = true; // the empty line after the trailers
    }
    return i;
  }
}

export const STATUS_TEXT: Record<number, string> = { 300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily', 303: 'See Other', 304: 'Not Modified', 305: 'Use Proxy', 307: 'Temporary Redirect', 308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Not Allowed', 413: 'Request Entity Too Large', 502: 'Bad Gateway', 503: 'Service Temporarily Unavailable', 504: 'Gateway Timeout' };

/** nginx's error page, as ingress-nginx answers 404/502/503... itself. */
export function errorPage(status: number): string {
  const title = `${status} ${STATUS_TEXT[status] ?? ''}`;
  return `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>kubewire</center>\r\n</body>\r\n</html>\r\n`;
}

/** A whole response with a small body, as the proxy itself answers (404, 503, 308...). */
export function simpleResponse(status: number, reason: string, headers: Array<[string, string]>, body: string, close: boolean): string {
  let out = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [k, v] of headers) out += `${k}: ${v}\r\n`;
  out += `content-length: ${Buffer.byteLength(body)}\r\n`;
  if (close) out += 'connection: close\r\n';
  return `${out}\r\n${body}`;
}
