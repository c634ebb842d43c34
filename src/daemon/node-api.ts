// The API server as the nodes reach it, through doors in each node's namespace (the daemon
// accepts on sockets made in there; TLS and authentication are the HTTPS listener's own; no
// link or route joins a node to the machine's namespace):
//   - the node's own 127.0.0.1 at the cluster's API port, so that a program in a node's
//     namespace (`ip netns exec NODE kubewire proxy --kubeconfig ...`, as kube-proxy runs with
//     hostNetwork) reaches it with the very kubeconfig `up` wrote (https://127.0.0.1:PORT; the
//     server certificate names 127.0.0.1);
//   - the node's underlay address at 6443, kube-apiserver's secure port: the endpoints of the
//     `kubernetes` Service (kubernetes-service.ts), as every node of an HA control plane
//     serves it, so pods reach the API at its ClusterIP like on any cluster.

import { createServer, type Server } from 'node:net';
import type { HttpsListener } from '../apiserver/https.ts';
import type { Netns } from '../dataplane/port.ts';
import { API_HOST } from '../identity/endpoint.ts';
import { API_SECURE_PORT } from './kubernetes-service.ts';

export async function serveApiInNodes(https: HttpsListener, nodes: Array<{ name: string; netns: Netns; ip: string }>, port: number | undefined, log: (line: string) => void): Promise<() => Promise<void>> {
  const servers: Server[] = [];
  for (const node of nodes) {
    const doors: Array<[string, number, string]> = [
      ...(port ? [[API_HOST, port, "programs in that node's namespace cannot reach the API"] as [string, number, string]] : []),
      [node.ip, API_SECURE_PORT, 'pods cannot reach the API through the kubernetes Service there'],
    ];
    for (const [host, p, consequence] of doors) {
      try {
        const fd = node.netns.listen('tcp', p, 511, host);
        // TCP_NODELAY, as Go (kube-apiserver) sets on every connection: a watch event is a small write that must not wait for an ACK.
        const server = createServer({ noDelay: true }, (socket) => https.accept(socket));
        await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ fd }, resolve));
        servers.push(server);
      } catch (e) {
        log(`the API on ${node.name}'s ${host}:${p}: ${(e as Error).message} (${consequence})`);
      }
    }
  }
  return async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  };
}
