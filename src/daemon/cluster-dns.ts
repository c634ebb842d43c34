// The cluster DNS as kubeadm installs CoreDNS: the Deployment kube-system/coredns (two
// replicas, spread by the scheduler, labels k8s-app=kube-dns) running kubewire's DNS server,
// behind the Service kube-system/kube-dns at the service range's 10th address, ports 53/UDP
// (dns), 53/TCP (dns-tcp) and 9153/TCP (metrics). The daemon creates them when they are
// missing; a user may scale or edit them as any other object.

import type { Deployment, Service } from '../api/types.ts';
import { createIfMissing, type ObjectClient } from '../apiserver/objects.ts';
import { dnsServiceIP, type ClusterSpec } from '../cluster/plan.ts';
import { externalDnsContainer, externalComponents } from './components.ts';

const LABELS = { 'k8s-app': 'kube-dns' };

export function clusterDnsObjects(spec: ClusterSpec): [Deployment, Service] {
  const deployment: Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'coredns', namespace: 'kube-system', labels: { ...LABELS } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { ...LABELS } },
      template: {
        metadata: { labels: { ...LABELS } },
        spec: {
          // Its own resolver is the node's (CoreDNS runs with dnsPolicy Default).
          dnsPolicy: 'Default',
          containers: [
            {
              name: 'coredns',
              image: 'kubewire/dns',
              ports: [
                { name: 'dns', containerPort: 53, protocol: 'UDP' },
                { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
              ],
            },
          ],
        },
      },
    },
  } as Deployment;
  const service: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { ...LABELS, 'kubernetes.io/name': 'CoreDNS' } },
    spec: {
      selector: { ...LABELS },
      clusterIP: dnsServiceIP(spec),
      ports: [
        { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' },
        { name: 'metrics', port: 9153, targetPort: 9153, protocol: 'TCP' },
      ],
    },
  };
  if (externalComponents(spec)) {
    const pod = deployment.spec!.template.spec!;
    pod.containers = pod.containers.map((c) => externalDnsContainer(spec, c));
  }
  return [deployment, service];
}

/** Creates the cluster DNS's objects that are missing (the Service first: its address is reserved before any user's Service takes it). */
export async function ensureClusterDns(client: ObjectClient, spec: ClusterSpec): Promise<void> {
  const [deployment, service] = clusterDnsObjects(spec);
  for (const obj of [service, deployment]) await createIfMissing(client, obj);
}
