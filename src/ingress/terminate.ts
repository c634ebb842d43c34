// TLS termination on :443. The connection's first bytes are read until the ClientHello is
// complete, they are put back, and its server name picks the certificate: each certificate
// has its own tls.Server (none of them listens), which is handed the connection and
// does the handshake with that certificate alone, so exactly the certificate chosen is served
// whatever its key type (clienthello.ts says why Node's SNICallback cannot promise that).

import type { Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type SecureVersion, type TLSSocket } from 'node:tls';
import { MAX_CLIENT_HELLO, readServerName } from './clienthello.ts';

/** nginx's ssl_handshake_timeout: the ClientHello within a minute, then the handshake within another. */
export const HANDSHAKE_TIMEOUT_MS = 60_000;
/** ingress-nginx's ssl-protocols default: TLSv1.2 TLSv1.3. */
export const MIN_TLS_VERSION: SecureVersion = 'TLSv1.2';
/** What is buffered at most while waiting for a ClientHello (its limit plus record headers). */
const MAX_HEAD = MAX_CLIENT_HELLO + 1024;

/** A certificate chain (leaf first) and its key, in PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

/** The server that terminates TLS with one certificate; `onSecure` gets each connection after its handshake. */
export function terminatingServer(pair: KeyPair, ALPNProtocols: string[], onSecure: (tls: TLSSocket) => void): TlsServer {
  const server = createTlsServer({ ...pair, minVersion: MIN_TLS_VERSION, ALPNProtocols, handshakeTimeout: HANDSHAKE_TIMEOUT_MS }, onSecure);
  server.on('tlsClientError', (_e, tls) => tls.destroy()); // no common cipher, a client's alert: just closed
  return server;
}

/** Reads the ClientHello of `socket`, then gives the connection to the server for its server name (undefined: none sent). */
export function terminateTls(socket: Socket, serverFor: (serverName: string | undefined) => TlsServer): void {
  socket.setTimeout(HANDSHAKE_TIMEOUT_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  let head: Buffer | undefined;
  const onData = (chunk: Buffer) => {
    head = head ? Buffer.concat([head, chunk]) : chunk;
    const read = readServerName(head);
    if (read === 'more' && head.length < MAX_HEAD) return;
    socket.off('data', onData);
    socket.pause();
    socket.setTimeout(0);
    socket.unshift(head);
    serverFor(read === 'more' ? undefined : read.serverName).emit('connection', socket);
  };
  socket.on('data', onData);
}
