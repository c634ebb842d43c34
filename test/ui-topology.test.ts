// The page's graph (pure): the seed's picture as elements, the diff the page applies, the filters.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EndpointSlice, Ingress, NetworkPolicy, Node, Pod, Service } from '../src/api/types.ts';
import { planCluster, DEFAULT_SPEC } from '../src/cluster/plan.ts';
import { diffElements, visible } from '../src/ui/graph.ts';
import { topology } from '../src/ui/topology.ts';
import type { Hop } from '../src/trace/types.ts';

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

// The layout (layout.ts): the picture row by row with fixed sizes, so that nothing overlaps at any size.
import { layoutGraph, overlaps, SIZES, type Rect } from '../src/ui/layout.ts';
import { tracePath } from '../src/ui/graph.ts';

const many = (perNode: number, nodes = 2) =>
  Array.from({ length: perNode * nodes }, (_, i) => pod(`web-${String(i).padStart(3, '0')}`, `g-node-${(i % nodes) + 1}`, `10.244.${i % nodes}.${10 + i}`));
const attachmentsFor = (pods: Pod[]) => new Map(['g-node-1', 'g-node-2'].map((n) => [n, pods.filter((p) => p.spec.nodeName === n).map((p, i) => ({ namespace: 'default', name: p.metadata.name, hostVeth: `veth${String(i).padStart(8, '0')}` }))]));
const inside = (a: Rect, box: Rect) => a.x - a.w / 2 >= box.x - box.w / 2 && a.x + a.w / 2 <= box.x + box.w / 2 && a.y - a.h / 2 >= box.y - box.h / 2 && a.y + a.h / 2 <= box.y + box.h / 2;

for (const perNode of [1, 6, 12, 40]) {
  test(`layout, ${perNode} pods per node: no two elements overlap, each pod inside its node's box, boxes apart, each veth pair a level line to its bridge`, () => {
    const pods = many(perNode);
    const g = topology({ ...objects(pods), attachments: attachmentsFor(pods) });
    const l = layoutGraph(g);
    const leaves = [...l.at.entries()];
    assert.equal(leaves.length, g.filter((e) => e.group === 'nodes' && e.data.kind !== 'node').length, 'every drawn element placed');
    // The bridge's label sits above its bar: count it as part of the bar.
    const withLabels = leaves.map(([id, r]) => [id, id.startsWith('cni0/') ? { ...r, y: r.y - 11, h: r.h + 22 } : r] as const);
    for (let i = 0; i < withLabels.length; i++) for (let j = i + 1; j < withLabels.length; j++) assert.ok(!overlaps(withLabels[i]![1], withLabels[j]![1]), `${withLabels[i]![0]} and ${withLabels[j]![0]} overlap`);
    for (const p of pods) assert.ok(inside(l.at.get(`pod/default/${p.metadata.name}`)!, l.boxes.get(`node/${p.spec.nodeName}`)!), `${p.metadata.name} inside its box`);
    const [b1, b2] = [l.boxes.get('node/g-node-1')!, l.boxes.get('node/g-node-2')!];
    assert.ok(!overlaps(b1, b2));
    for (const [id, r] of leaves) if (!id.startsWith('pod/') && !id.startsWith('cni0/') && !id.startsWith('eth0/')) assert.ok(!overlaps(r, b1) && !overlaps(r, b2), `${id} outside the boxes`);
    for (const p of pods) {
      const at = l.at.get(`pod/default/${p.metadata.name}`)!;
      const bar = l.at.get(`cni0/${p.spec.nodeName}`)!;
      const end = l.ends.get(`veth:pod/default/${p.metadata.name}->cni0/${p.spec.nodeName}`)!;
      assert.equal(bar.y + end.dy, at.y, 'the pair ends on the bar level with its pod');
      assert.equal(Math.abs(end.dx), SIZES.bar / 2);
      assert.ok(at.y - at.h / 2 >= bar.y - bar.h / 2 && at.y + at.h / 2 <= bar.y + bar.h / 2, 'the bar spans its pods');
    }
    // The picture's rows: Services above the boxes, the underlay below them, the router below it.
    assert.ok(l.at.get('svc/default/web')!.y < b1.y - b1.h / 2);
    assert.ok(l.at.get('underlay')!.y > b1.y + b1.h / 2);
    assert.ok(l.at.get('router')!.y > l.at.get('underlay')!.y);
  });
}

test('layout: a pod keeps its place when another comes after it (by name), and the layout is the same for the same graph', () => {
  const before = layoutGraph(topology(objects(many(3))));
  const after = layoutGraph(topology(objects([...many(3), pod('zz-last', 'g-node-1', '10.244.0.99')])));
  for (const p of many(3)) assert.deepEqual(after.at.get(`pod/default/${p.metadata.name}`), before.at.get(`pod/default/${p.metadata.name}`));
  assert.deepEqual(layoutGraph(topology(objects(many(3)))), before);
});

test("layout in vpc mode: eth0 is the bar the ptp pairs end on", () => {
  const vpc = planCluster({ ...DEFAULT_SPEC, name: 'g', nodes: 2, mode: 'vpc' });
  const g = topology({ ...objects(many(4)), plan: vpc });
  const l = layoutGraph(g);
  assert.equal(l.at.get('eth0/g-node-1')!.w, SIZES.bar);
  assert.ok(l.ends.has('veth:pod/default/web-000->eth0/g-node-1'));
  assert.ok(l.ends.has('link:eth0/g-node-1->underlay'));
});

test('a trace on the graph: a path along its veth pairs, bridges and links (the underlay filled in between eth0 and the router), no step from an element to itself', () => {
  const g = topology(objects([pod('a', 'g-node-1', '10.244.0.5'), pod('b', 'g-node-2', '10.244.1.5')]));
  const hop = (netns: string, kind: Hop['kind'], io: { in?: string; out?: string } = {}, detail = '') => ({ netns, kind, detail, ...io });
  const hops = [
    hop('pod/default/a', 'l3', { out: 'eth0' }),
    hop('node/g-node-1', 'l2', {}, "bridge cni0: 0a:… is the bridge's own address"),
    hop('node/g-node-1', 'netfilter'),
    hop('node/g-node-1', 'l3', { in: 'cni0', out: 'eth0' }),
    hop('network', 'l3', { in: 'underlay', out: 'underlay' }),
    hop('network', 'l2', {}, 'bridge underlay: FDB … → port node2'),
    hop('node/g-node-2', 'l2', { in: 'eth0' }),
    hop('node/g-node-2', 'conntrack'),
    hop('node/g-node-2', 'l3', { in: 'eth0', out: 'cni0' }),
    hop('pod/default/b', 'socket'),
  ];
  const { places, steps } = tracePath(hops, g);
  assert.deepEqual(places, ['pod/default/a', 'cni0/g-node-1', 'eth0/g-node-1', 'router', 'underlay', 'eth0/g-node-2', 'cni0/g-node-2', 'pod/default/b']);
  assert.deepEqual(steps.map((s) => ('edge' in s ? `${s.edge}${s.forward ? '' : ' (back)'}` : 'jump')), [
    'veth:pod/default/a->cni0/g-node-1',
    'link:cni0/g-node-1->eth0/g-node-1',
    'link:eth0/g-node-1->underlay',
    'link:router->underlay (back)',
    'link:router->underlay',
    'link:eth0/g-node-2->underlay (back)',
    'link:cni0/g-node-2->eth0/g-node-2 (back)',
    'veth:pod/default/b->cni0/g-node-2 (back)',
  ]);
  for (const s of steps) assert.notEqual(s.from, s.to);
  // Between two places the graph does not join, a jump (never through a pod).
  const stray = tracePath([hop('pod/default/a', 'l3'), hop('pod/default/b', 'socket')], g.filter((e) => e.data.kind !== 'veth'));
  assert.deepEqual(stray.steps, [{ jump: true, from: 'pod/default/a', to: 'pod/default/b' }]);
});

test('layout: pods in the order of their addresses (a node hands them out in order: a new pod moves nobody), those without one last; the view that fits the picture', async () => {
  const { podOrder, fitView } = await import('../src/ui/layout.ts');
  const g = topology(objects([pod('zz', 'g-node-1', '10.244.0.2'), pod('aa', 'g-node-1', '10.244.0.10'), pod('mm', 'g-node-1', '', {}, 'Pending')]));
  assert.deepEqual(g.filter((e) => e.data.kind === 'pod').sort(podOrder).map((e) => e.data.id), ['pod/default/zz', 'pod/default/aa', 'pod/default/mm']);
  const v = fitView({ x: 500, y: 250, w: 1000, h: 500 }, { w: 548, h: 1000 });
  assert.equal(v.zoom, 0.5);
  assert.deepEqual(v.pan, { x: 24, y: 375 });
  assert.equal(fitView({ x: 50, y: 50, w: 100, h: 100 }, { w: 1000, h: 1000 }).zoom, 1.25, 'never magnified past 1.25');
  // Room below for the pods to come: the top of the picture stays at the top of the view.
  const roomy = fitView({ x: 500, y: 500, w: 1000, h: 1000 }, { w: 1248, h: 1248 }, 24, 1.25, 0.2);
  assert.equal(roomy.zoom, 1200 / 1200);
  assert.equal(roomy.pan.y + 0 * roomy.zoom, 24, "the picture's top at the margin");
});

test('layout, given the previous one: pods keep their places as they get their addresses or go (a burst of Pending pods moves nobody as each turns Running), new ones take free places', () => {
  const pending = Array.from({ length: 8 }, (_, i) => pod(`p-${i}`, 'g-node-1', '', {}, 'Pending'));
  const first = layoutGraph(topology(objects(pending)));
  // p-5 gets its address first: by podOrder alone it would go first and move five pods.
  const running = pending.map((p) => (p.metadata.name === 'p-5' ? pod('p-5', 'g-node-1', '10.244.0.2') : p));
  const second = layoutGraph(topology(objects(running)), first);
  for (const p of pending) assert.deepEqual(second.at.get(`pod/default/${p.metadata.name}`), first.at.get(`pod/default/${p.metadata.name}`), `${p.metadata.name} stays`);
  // p-0 goes, p-new comes: it takes p-0's place, the others stay.
  const third = layoutGraph(topology(objects([...running.filter((p) => p.metadata.name !== 'p-0'), pod('p-new', 'g-node-1', '10.244.0.3')])), second);
  assert.deepEqual(third.at.get('pod/default/p-new'), first.at.get('pod/default/p-0'));
  for (const p of running.slice(1)) assert.deepEqual(third.at.get(`pod/default/${p.metadata.name}`), first.at.get(`pod/default/${p.metadata.name}`));
  // Without a previous layout: podOrder, as before.
  assert.deepEqual(layoutGraph(topology(objects(running))).at.get('pod/default/p-5'), first.at.get('pod/default/p-0'));
});

test('NetworkPolicy: an isolated pod is marked and names the policies that isolate it, per direction; other namespaces\' policies and unselected pods are untouched', () => {
  const np = (ns: string, name: string, spec: object) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec: { podSelector: {}, ...spec } }) as NetworkPolicy;
  const policies = [
    np('default', 'deny-ingress', { podSelector: { matchLabels: { app: 'web' } } }),
    np('default', 'egress-dns', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }] }),
    np('other', 'deny-all', { policyTypes: ['Ingress', 'Egress'] }),
  ];
  const g = topology({ ...objects([pod('a', 'g-node-1', '10.244.0.5'), pod('b', 'g-node-2', '10.244.1.5', { app: 'db' })]), policies });
  const a = g.find((e) => e.data.id === 'pod/default/a')!;
  const b = g.find((e) => e.data.id === 'pod/default/b')!;
  assert.equal(a.classes, 'running isolated');
  assert.ok(a.data.facts?.includes('isolated for ingress by default/deny-ingress'), a.data.facts?.join('; '));
  assert.ok(a.data.facts?.includes('isolated for egress by default/egress-dns'), a.data.facts?.join('; '));
  assert.equal(b.classes, 'running', "b is selected by no policy of its namespace (other/deny-all is another namespace's)");
  assert.ok(!b.data.facts?.some((f) => f.startsWith('isolated')));
});
