// The API server as the nodes reach it: on each node's own 127.0.0.1, at the cluster's API
// port, so that a program in a node's namespace (`ip netns exec NODE kubewire proxy
// --kubeconfig ...`, as kube-proxy runs with hostNetwork) reaches it with the very kubeconfig
// `up` wrote (https://127.0.0.1:PORT; the server certificate names 127.0.0.1). The socket
// lives in the node's namespace and the daemon accepts on it; TLS and authentication are the
// HTTPS listener's own. No link or route joins the node to the machine's namespace.

import { createServer, type Server } from 'node:net';
import type { HttpsListener } from '../apiserver/https.ts';
import type { Netns } from '../dataplane/port.ts';
import { API_HOST } from '../identity/endpoint.ts';

export async function serveApiInNodes(https: HttpsListener, nodes: Array<{ name: string; netns: Netns }>, port: number, log: (line: string) => void): Promise<() => Promise<void>> {
  const servers: Server[] = [];
  for (const node of nodes) {
    try {
      const fd = node.netns.listen('tcp', port, 511, API_HOST);
      const server = createServer((socket) => https.accept(socket));
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ fd }, resolve));
      servers.push(server);
    } catch (e) {
      log(`the API on ${node.name}'s ${API_HOST}:${port}: ${(e as Error).message} (programs in that node's namespace cannot reach the API)`);
    }
  }
  return async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  };
}
