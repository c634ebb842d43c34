// Built-in workloads for containers that have no command (images are not pulled):
//  - "hello": an HTTP server on each TCP containerPort answering with the pod's name, its
//    IP and the client's address as the pod sees it (the proof that nothing NATs pod
//    traffic), and a UDP echo of the same on each UDP containerPort;
//  - agnhost netexec: /hostname, /clientip, /echo?msg=, /healthz, /exit, /shell refused;
//    UDP commands "hostname", "echo X", "clientip";
//  - agnhost serve-hostname: the pod name over HTTP (and UDP with --udp).

import type { IncomingMessage, ServerResponse } from 'node:http';

export interface PodIdentity {
  name: string;
  /** The pod's hostname (spec.hostname, else its name): what hostname-answering workloads say. */
  hostname?: string;
  namespace: string;
  ip: string;
  node: string;
}

export { kubewireCommand, workloadFor, type WorkloadKind, type WorkloadSpec } from '../api/workload-kind.ts';
import type { WorkloadKind } from '../api/workload-kind.ts';

/** The client address as a pod sees it: IPv4 clients come in as ::ffff:a.b.c.d on our dual socket. */
export function plainAddress(a: string | undefined): string {
  return (a ?? '').replace(/^::ffff:/, '');
}

function hostPort(addr: string | undefined, port: number | undefined): string {
  const a = plainAddress(addr);
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

export function helloText(pod: PodIdentity, client: string, server: string): string {
  return `pod: ${pod.name}\nnamespace: ${pod.namespace}\n${pod.hostname && pod.hostname !== pod.name ? `hostname: ${pod.hostname}\n` : ''}pod IP: ${pod.ip}\nnode: ${pod.node}\nserver: ${server}\nclient: ${client}\n`;
}

/** Answers one HTTP request; returns the log line. */
export function handleHttp(kind: WorkloadKind, pod: PodIdentity, req: IncomingMessage, res: ServerResponse): string {
  const url = new URL(req.url ?? '/', 'http://pod');
  const client = hostPort(req.socket.remoteAddress, req.socket.remotePort);
  const server = hostPort(req.socket.localAddress, req.socket.localPort);
  let status = 200;
  let body: string;
  if (kind === 'hello') body = helloText(pod, client, server);
  else if (kind === 'serve-hostname') body = pod.hostname ?? pod.name;
  else {
    switch (url.pathname) {
      case '/':
        body = `NOW: ${new Date().toISOString()}`;
        break;
      case '/hostname':
        body = pod.hostname ?? pod.name;
        break;
      case '/clientip':
        body = client;
        break;
      case '/echo':
        body = url.searchParams.get('msg') ?? '';
        break;
      case '/healthz':
        body = 'ok';
        break;
      case '/header': {
        const h = req.headers[(url.searchParams.get('key') ?? '').toLowerCase()];
        body = Array.isArray(h) ? h.join(',') : (h ?? '');
        break;
      }
      case '/shell':
        status = 403;
        body = 'kubewire: /shell is not served (it would run commands on the host)';
        break;
      default:
        status = 404;
        body = `404 page not found`;
    }
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
  return `${new Date().toISOString()} ${client} ${req.method} ${req.url} ${status}`;
}

/** Answers one UDP datagram (pure). */
export function answerUdp(kind: WorkloadKind, pod: PodIdentity, message: string, client: string): string {
  if (kind === 'hello') return helloText(pod, client, '');
  if (kind === 'serve-hostname') return pod.hostname ?? pod.name;
  const [cmd, ...rest] = message.trim().split(' ');
  if (cmd === 'hostname') return pod.hostname ?? pod.name;
  if (cmd === 'echo') return rest.join(' ');
  if (cmd === 'clientip') return client;
  return `unknown command ${JSON.stringify(cmd)}`;
}
