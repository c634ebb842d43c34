// The server name a TLS client asks for, read from the first bytes of its connection (the
// ClientHello's server_name extension, RFC 6066 §3), before any TLS library sees them. The
// ingress picks the certificate from it and hands the connection to OpenSSL with that one
// certificate only: Node's SNICallback adds the chosen certificate beside the default one
// (SSL_use_certificate fills the slot of its key type), and when the two differ in key type
// OpenSSL serves whichever the client's signature algorithms prefer (nodejs/node#54235).

/** TLS record: content type 22 is a handshake; a header is 5 bytes. */
const HANDSHAKE_RECORD = 22;
const RECORD_HEADER = 5;
const CLIENT_HELLO = 1;
const SERVER_NAME_EXTENSION = 0;
const HOST_NAME = 0;
/** OpenSSL refuses a ClientHello longer than this: nothing past it needs to be buffered. */
export const MAX_CLIENT_HELLO = 16_384;

/** 'more': a complete ClientHello needs more bytes; otherwise what it names (undefined: no SNI, or not TLS). */
export type ServerNameRead = 'more' | { serverName: string | undefined };

const NONE = { serverName: undefined } as const;

/**
 * Reads the SNI host name from the start of a connection. A ClientHello may come in several
 * records and several TCP segments; its fragments are joined until its length is reached.
 * Anything that is not a well-formed ClientHello reads as "no name": the TLS library then
 * answers it as it would any client (an alert), from the default certificate's context.
 */
export function readServerName(head: Buffer): ServerNameRead {
  const fragments: Buffer[] = [];
  let have = 0;
  let need = -1; // the handshake message's length with its 4-byte header, once known
  for (let at = 0; ; ) {
    if (head.length < at + RECORD_HEADER) return 'more';
    if (head[at] !== HANDSHAKE_RECORD || head[at + 1] !== 3) return NONE;
    const length = head.readUInt16BE(at + 3);
    const end = at + RECORD_HEADER + Math.min(length, head.length - at - RECORD_HEADER);
    const fragment = head.subarray(at + RECORD_HEADER, end);
    fragments.push(fragment);
    have += fragment.length;
    if (need < 0 && have >= 4) {
      const first = fragments.length === 1 ? fragment : Buffer.concat(fragments);
      if (first[0] !== CLIENT_HELLO) return NONE;
      need = 4 + first.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO + 4) return NONE;
    }
    if (need >= 0 && have >= need) return { serverName: serverNameOf(Buffer.concat(fragments).subarray(4, need)) };
    if (end < at + RECORD_HEADER + length) return 'more';
    at = end;
  }
}

/** The host_name of a ClientHello body's server_name extension (lowercase, no trailing dot). */
function serverNameOf(hello: Buffer): string | undefined {
  let at = 2 + 32; // legacy_version, random
  if (hello.length < at + 1) return undefined;
  at += 1 + hello[at]!; // session id
  if (hello.length < at + 2) return undefined;
  at += 2 + hello.readUInt16BE(at); // cipher suites
  if (hello.length < at + 1) return undefined;
  at += 1 + hello[at]!; // compression methods
  if (hello.length < at + 2) return undefined; // no extensions at all
  const end = Math.min(hello.length, at + 2 + hello.readUInt16BE(at));
  for (at += 2; at + 4 <= end; ) {
    const type = hello.readUInt16BE(at);
    const length = hello.readUInt16BE(at + 2);
    at += 4;
    if (at + length > end) return undefined;
    if (type === SERVER_NAME_EXTENSION) return hostNameOf(hello.subarray(at, at + length));
    at += length;
  }
  return undefined;
}

function hostNameOf(ext: Buffer): string | undefined {
  if (ext.length < 2) return undefined;
  const end = Math.min(ext.length, 2 + ext.readUInt16BE(0));
  for (let at = 2; at + 3 <= end; ) {
    const type = ext[at]!;
    const length = ext.readUInt16BE(at + 1);
    at += 3;
    if (at + length > end) return undefined;
    if (type === HOST_NAME) {
      const name = ext.toString('latin1', at, at + length).toLowerCase();
      // A host name is letters, digits, '-', '.', '_' (and '*' never): anything else names nothing.
      if (!/^[a-z0-9._-]{1,253}$/.test(name)) return undefined;
      return name.endsWith('.') ? name.slice(0, -1) : name;
    }
    at += length;
  }
  return undefined;
}
