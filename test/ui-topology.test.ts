// The page's graph (pure): the seed's picture as elements, the diff the page applies, the filters.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EndpointSlice, Ingress, Node, Pod, Service } from '../src/api/types.ts';
import { planCluster, DEFAULT_SPEC } from '../src/cluster/plan.ts';
import { diffElements, visible } from '../src/ui/graph.ts';
import { topology } from '../src/ui/topology.ts';

const plan = planCluster({ ...DEFAULT_SPEC, name: 'g', nodes: 2 });
const node = (name: string, cidr: string): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR: cidr }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }) as Node;
const pod = (name: string, nodeName: string, ip: string, labels: Record<string, string> = { app: 'web' }, phase = 'Running'): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels }, spec: { nodeName, containers: [{ name: 'c', image: 'kubewire/echo' }] }, status: { phase, podIP: ip } }) as Pod;
const service: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', selector: { app: 'web' }, ports: [{ port: 80 }] } } as Service;
const slice: EndpointSlice = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', namespace: 'default', name: 'a' } }] };
const ingress: Ingress = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop', namespace: 'default' }, spec: { rules: [{ host: 'shop.example', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] } };

const objects = (pods: Pod[]) => ({ plan, nodes: [node('g-node-1', '10.244.0.0/24'), node('g-node-2', '10.244.1.0/24')], pods, services: [service], slices: [slice], ingresses: [ingress], attachments: new Map([['g-node-1', [{ namespace: 'default', name: 'a', hostVeth: 'veth0123abcd' }]]]) });

test("the seed's picture: the underlay and its router's routes, each node's eth0 and cni0, pods in their node joined by their veth, Services to endpoints, Ingresses to Services", () => {
  const g = topology(objects([pod('a', 'g-node-1', '10.244.0.5'), pod('b', 'g-node-2', '10.244.1.5')]));
  const byId = new Map(g.map((e) => [e.data.id, e]));
  assert.deepEqual(byId.get('router')!.data.facts, ['route 10.244.0.0/24 via 172.18.0.11', 'route 10.244.1.0/24 via 172.18.0.12']);
  assert.equal(byId.get('eth0/g-node-1')!.data.ip, '172.18.0.11');
  assert.equal(byId.get('cni0/g-node-2')!.data.ip, '10.244.1.1');
  assert.equal(byId.get('pod/default/a')!.data.parent, 'node/g-node-1');
  assert.equal(byId.get('veth:pod/default/a->cni0/g-node-1')!.data.label, 'eth0 ↔ veth0123abcd');
  assert.ok(byId.has('endpoint:svc/default/web->pod/default/a'));
  assert.ok(!byId.has('endpoint:svc/default/web->pod/default/b'), 'only the EndpointSlice says who is an endpoint');
  assert.ok(byId.has('backend:ing/default/shop->svc/default/web'));
  assert.ok(byId.has('link:eth0/g-node-2->underlay'));
});

test('host-gw: the router holds no pod routes', () => {
  const hostGw = planCluster({ ...DEFAULT_SPEC, name: 'h', nodes: 2, mode: 'host-gw' });
  const g = topology({ ...objects([]), plan: hostGw });
  assert.match(g.find((e) => e.data.id === 'router')!.data.facts!.join(), /no pod routes/);
});

test('the diff the page applies: added, removed, changed (a pod moving to Running), a parent change as remove and add', () => {
  const before = topology(objects([pod('a', 'g-node-1', '10.244.0.5'), pod('c', 'g-node-1', '', { app: 'x' }, 'Pending')]));
  const after = topology(objects([pod('a', 'g-node-1', '10.244.0.5'), pod('c', 'g-node-1', '10.244.0.9', { app: 'x' }), pod('d', 'g-node-2', '10.244.1.9')]));
  const d = diffElements(before, after);
  assert.deepEqual(d.add.map((e) => e.data.id).sort(), ['pod/default/d', 'veth:pod/default/d->cni0/g-node-2']);
  assert.deepEqual(d.update.map((e) => e.data.id), ['pod/default/c']);
  assert.deepEqual(d.remove, []);
  const gone = diffElements(after, topology(objects([pod('a', 'g-node-1', '10.244.0.5')])));
  assert.deepEqual(gone.remove.sort(), ['pod/default/c', 'pod/default/d', 'veth:pod/default/c->cni0/g-node-1', 'veth:pod/default/d->cni0/g-node-2']);
  const moved = diffElements(before, topology(objects([pod('a', 'g-node-2', '10.244.1.5'), pod('c', 'g-node-1', '', { app: 'x' }, 'Pending')])));
  assert.ok(moved.remove.includes('pod/default/a') && moved.add.some((e) => e.data.id === 'pod/default/a'));
});

test('filters: a namespace and labels apply to pods, Services and Ingresses, never to the network', () => {
  const g = topology(objects([pod('a', 'g-node-1', '10.244.0.5'), pod('c', 'g-node-1', '10.244.0.9', { app: 'x' })]));
  const shown = g.filter((e) => e.group === 'nodes' && visible(e, { labels: { app: 'x' } })).map((e) => e.data.id);
  assert.ok(shown.includes('pod/default/c') && !shown.includes('pod/default/a'));
  assert.ok(shown.includes('router') && shown.includes('cni0/g-node-1'));
  assert.ok(!g.filter((e) => visible(e, { namespace: 'kube-system' })).some((e) => e.data.kind === 'pod'));
});

test("vxlan mode: each node's overlay as flannel programs it (pure), and the router holds no pod routes", async () => {
  const { vxlanOps, routerRoutes, nodeRoutes, podMTU } = await import('../src/cluster/plan.ts');
  const vx = planCluster({ ...DEFAULT_SPEC, name: 'v', nodes: 3, mode: 'vxlan' });
  assert.deepEqual(routerRoutes(vx), []);
  assert.deepEqual(nodeRoutes(vx, vx.nodes[0]!), []);
  assert.equal(podMTU(vx), 1450);
  const ops = vxlanOps(vx, vx.nodes[0]!);
  assert.deepEqual(ops[0], { op: 'vxlan-add', name: 'flannel.1', id: 1, port: 8472, local: '172.18.0.11', dev: 'eth0', learning: false, mtu: 1450, mac: '0e:6b:77:00:00:01' });
  assert.deepEqual(ops[1], { op: 'addr-add', dev: 'flannel.1', address: '10.244.0.0/32' });
  assert.deepEqual(ops.slice(3, 6), [
    { op: 'neigh-replace', dev: 'flannel.1', ip: '10.244.1.0', mac: '0e:6b:77:00:00:02' },
    { op: 'fdb-replace', dev: 'flannel.1', mac: '0e:6b:77:00:00:02', dst: '172.18.0.12' },
    { op: 'route-add', dst: '10.244.1.0/24', via: '10.244.1.0', dev: 'flannel.1', onlink: true, replace: true },
  ]);
  assert.equal(ops.length, 3 + 2 * 3, 'the two other nodes');
  assert.deepEqual(vxlanOps(planCluster({ ...DEFAULT_SPEC, name: 'r', nodes: 2 }), planCluster({ ...DEFAULT_SPEC, name: 'r', nodes: 2 }).nodes[0]!), [], 'routed mode has none');
});

test('vpc mode: no bridge; each pod\'s ptp pair ends on its node\'s eth0 side; the router holds no pod routes', () => {
  const vpc = planCluster({ ...DEFAULT_SPEC, name: 'g', nodes: 2, mode: 'vpc' });
  const noCidr = (name: string): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: {}, status: { conditions: [{ type: 'Ready', status: 'True' }] } }) as Node;
  const g = topology({ ...objects([pod('a', 'g-node-1', '172.18.1.3')]), plan: vpc, nodes: [noCidr('g-node-1'), noCidr('g-node-2')] });
  const byId = new Map(g.map((e) => [e.data.id, e]));
  assert.ok(!byId.has('cni0/g-node-1'), 'no bridge in vpc mode');
  assert.equal(byId.get('veth:pod/default/a->eth0/g-node-1')!.data.label, 'eth0 ↔ veth0123abcd (ptp, gateway 169.254.1.1)');
  assert.match(byId.get('router')!.data.facts![0]!, /no pod routes: pods hold VPC addresses/);
  assert.equal(byId.get('node/g-node-1')!.data.label, 'g-node-1  pods take VPC addresses');
});
