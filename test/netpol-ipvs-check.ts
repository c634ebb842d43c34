// NetworkPolicy in IPVS proxy mode, on a cluster in a kernel of its own (`up --kernel uml`:
// IP_VS, and no nf_tables for ip, so the iptables + ipset backend). Not a test file by itself:
// test/uml.test.ts calls it on the IPVS cluster it has already booted (a UML boot is the
// expensive part), with the `web` Deployment's two pods and its NodePort Service.
//
// IPVS DNATs in LOCAL_IN and sends a Service's packets on through OUTPUT: the checks are that
// an egress-isolated pod's Service traffic is judged there on the backend's address and target
// port (allowed on 8080, dropped when only the Service's port 80 is allowed), that ingress
// through a NodePort is judged too, and that the last policy leaves no rule behind.

import assert from 'node:assert/strict';
import type { Kube } from './kube.ts';
import { waitFor } from './kube.ts';

interface WebPod {
  metadata: { name: string };
  spec: { nodeName?: string };
}

const egress = (port: number) =>
  JSON.stringify({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'web-egress', namespace: 'default' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port }] }] },
  });

const ingressFromClient = JSON.stringify({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'web-ingress', namespace: 'default' },
  spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] },
});

/** `nodes`: the cluster's node names; `nodeIP:nodePort` the Service's NodePort on one of them. */
export async function checkPolicyThroughIpvs(kube: Kube, o: { pods: WebPod[]; clusterIP: string; nodes: string[]; nodePort: string }): Promise<void> {
  const client = o.pods[0]!;
  const curl = async (from: string[], url: string) => (await kube.run(['exec', ...from, '--', 'curl', '-s', '-o', '/dev/null', '-m', '3', '-w', '%{http_code}', url])).stdout === '200';
  const viaService = () => curl([client.metadata.name], `http://${o.clusterIP}/`);
  const viaNodePort = () => curl(['--external'], `http://${o.nodePort}/`);
  const rules = (node: string) => kube.ok('exec', '--node', node, '--', 'iptables-legacy-save', '-t', 'filter');
  try {
    // The web pods' egress only to web pods on 8080, the target port: from the first, the
    // ClusterIP (port 80) answers, from both backends (one may be on the other node). Dropped
    // in INPUT before IPVS, it would not.
    await kube.apply(egress(8080));
    await waitFor('the client egress chain on its node', async () => /-A KWNP-EG-\S+ .*--dport 8080 .*web-egress egress rule 0/.test(await rules(client.spec.nodeName!)), 30_000);
    for (let i = 0; i < 4; i++) assert.ok(await viaService(), `try ${i + 1}: the egress-isolated client reaches the ClusterIP (allowed on the backend's port 8080)`);
    // Only the Service's own port allowed: judged after IPVS, on the real port, so dropped.
    await kube.apply(egress(80));
    await waitFor('the ClusterIP dropped for the client (port 80 is not the backend port)', async () => !(await viaService()), 30_000);
    // Ingress of the web pods from web pods only: the client still gets through, an external
    // client through the NodePort (IPVS on the node) no longer does.
    await kube.apply(`${egress(8080)}\n---\n${ingressFromClient}`);
    await waitFor('the client through the ClusterIP again', viaService, 30_000);
    await waitFor('the NodePort dropped for the external client', async () => !(await viaNodePort()), 30_000);
    const save = await rules(o.nodes[0]!);
    assert.match(save, /^-A OUTPUT -m comment --comment "kubewire netpol" -j KUBEWIRE-NETPOL-OUTPUT$/m, 'the OUTPUT jump is there');
    assert.match(save, /^-A INPUT -m comment --comment "kubewire netpol" -j KUBEWIRE-NETPOL-INPUT$/m);
  } finally {
    await kube.run(['delete', 'networkpolicy', 'web-egress', 'web-ingress', '--ignore-not-found']);
  }
  await waitFor('the NodePort open again', viaNodePort, 30_000);
  for (const node of o.nodes) assert.doesNotMatch(await rules(node), /KUBEWIRE-NETPOL|KWNP-/, `no policy rule left on ${node}`);
}
