// The API over HTTPS with client certificates, as kube-apiserver serves it to kubectl: the
// server's certificate from the cluster's CA, and a client must present one the same CA
// signed (kubeconfig's client-certificate-data). TLS ends here; each authenticated connection
// is handed to the API server's own HTTP server (ApiServer.accept), so requests and upgrades
// (exec, port-forward) take the same path as on the unix socket. A connection without such
// a certificate gets 401 Unauthorized, as a Status, for every request and upgrade.

import { existsSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { API_HOST, apiServerUrl, guestTlsSocket, readEndpoint } from '../identity/endpoint.ts';
import { PKI, pkiDir, readServingPki, type ServingPki } from '../identity/pki.ts';

/** Where the HTTPS listener listens: TCP (the host's 127.0.0.1:PORT) or a unix socket (in a guest kernel, relayed by the host). */
export type HttpsAddress = { host: string; port: number } | { path: string };

/** What kube-apiserver answers a request it cannot authenticate. */
export const UNAUTHORIZED = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };

export interface ConnectionSink {
  accept(socket: Duplex): void;
}

export class HttpsListener {
  private readonly sockets = new Set<TLSSocket>();

  private constructor(private readonly server: TlsServer) {}

  /** Listens at `address`; authenticated connections go to `sink`. */
  static async listen(sink: ConnectionSink, pki: ServingPki, address: HttpsAddress): Promise<HttpsListener> {
    const unauthorized = anonymousServer();
    // rejectUnauthorized false: a wrong or missing certificate is an HTTP 401, not a failed handshake.
    // HTTP/1.1 only (no ALPN h2): exec and port-forward upgrade the connection.
    const server = createTlsServer({ ca: pki.ca, cert: pki.cert, key: pki.key, requestCert: true, rejectUnauthorized: false });
    const listener = new HttpsListener(server);
    server.on('secureConnection', (socket) => {
      listener.sockets.add(socket);
      socket.on('close', () => listener.sockets.delete(socket));
      if (socket.authorized) sink.accept(socket);
      else unauthorized.emit('connection', socket);
    });
    server.on('tlsClientError', () => {}); // a client that fails its handshake is its own problem
    if ('path' in address) rmSync(address.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const where = 'path' in address ? address.path : `${address.host}:${address.port}`;
        reject(new Error(e.code === 'EADDRINUSE' ? `cannot serve the API on ${where}: another program listens there` : `cannot serve the API on ${where}: ${e.message}`));
      });
      if ('path' in address) server.listen(address.path, resolve);
      else server.listen(address.port, address.host, resolve);
    });
    return listener;
  }

  /** Takes a connection accepted elsewhere (the API's listener in a node's namespace): TLS and all as on its own port. */
  accept(socket: Duplex): void {
    this.server.emit('connection', socket);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

/** The HTTP server for connections without a good certificate: 401 to every request and upgrade. */
function anonymousServer() {
  const body = JSON.stringify(UNAUTHORIZED);
  const server = createHttpServer((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(401, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  return server;
}

/**
 * The cluster's HTTPS listener, from its directory's records (pki/, apiserver.json): on the
 * recorded port of 127.0.0.1, or, in a kernel of its own (`guest`), on the socket the kernel
 * host relays that port to. A cluster directory without them (a daemon started by hand, not by
 * `up`) serves the unix socket only, and says so.
 */
export async function listenClusterHttps(sink: ConnectionSink, clusterDir: string, guest: boolean, log: (line: string) => void): Promise<HttpsListener | undefined> {
  const endpoint = guest ? undefined : readEndpoint(clusterDir);
  if ((!guest && !endpoint) || !existsSync(join(pkiDir(clusterDir), PKI.serverKey))) {
    log(`no HTTPS for this cluster: ${clusterDir} has no ${guest ? 'pki/' : 'apiserver.json or pki/'} (kubewire up makes them)`);
    return undefined;
  }
  const address: HttpsAddress = endpoint ? { host: API_HOST, port: endpoint.port } : { path: guestTlsSocket(clusterDir) };
  const listener = await HttpsListener.listen(sink, readServingPki(clusterDir), address);
  log(`API served over HTTPS on ${endpoint ? apiServerUrl(endpoint) : `${guestTlsSocket(clusterDir)} (relayed by the kernel host)`}`);
  return listener;
}
