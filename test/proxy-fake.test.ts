// Without root: the EndpointSlice controller's desired slices and Service admission as
// tables, then the service proxy end to end against a store and the fake dataplane — watches
// in, change tracking (only changed Services rebuilt), both backends' transactions accepted
// by the fake's kernel checks (every jump and map element resolves), partial syncs after
// the first, rules restored after a flush, UDP conntrack cleanup.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { EndpointSlice, Pod, Service } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import { admitService, ServiceInvalid } from '../src/apiserver/services.ts';
import { Store } from '../src/apiserver/store.ts';
import { desiredSlices, MAX_ENDPOINTS_PER_SLICE } from '../src/controllers/endpointslice.ts';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';
import { IptablesBackend } from '../src/proxy/iptables/backend.ts';
import { NftablesBackend } from '../src/proxy/nftables/backend.ts';
import { IpvsBackend } from '../src/proxy/ipvs/backend.ts';
import { Proxier, type ProxyBackend } from '../src/proxy/proxier.ts';

const scratch = mkdtempSync(join(tmpdir(), 'kwt-proxyfake-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const service = (name: string, spec: Partial<Service['spec']> = {}): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', uid: `${name}-uid` }, spec: { selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 'web' }], ...spec } });
const pod = (name: string, app: string, ip: string, over: { ready?: boolean; port?: number; deleting?: boolean; node?: string } = {}): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default', uid: `${name}-uid`, labels: { app }, ...(over.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  spec: { nodeName: over.node ?? 'n1', containers: [{ name: 'c', image: 'x', ports: [{ name: 'web', containerPort: over.port ?? 8080 }] }] },
  status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: over.ready === false ? 'False' : 'True' }] },
});

test('desired slices: named ports resolved per pod, ready/serving/terminating, grouped by ports, at most 100 per slice', () => {
  const svc = service('web');
  const slices = desiredSlices(svc, [
    pod('a', 'web', '10.244.1.2'),
    pod('b', 'web', '10.244.2.2', { ready: false }),
    pod('c', 'web', '10.244.1.3', { deleting: true }),
    pod('d', 'web', '10.244.2.3', { port: 9090 }),
    pod('e', 'other', '10.244.1.4'),
    { ...pod('f', 'web', ''), status: { phase: 'Pending' } },
  ]);
  assert.equal(slices.length, 2, 'two port groups: 8080 and 9090');
  const by8080 = slices.find((s) => s.ports?.[0]?.port === 8080)!;
  assert.deepEqual(by8080.endpoints.map((e) => [e.addresses[0], e.conditions]), [
    ['10.244.1.2', { ready: true, serving: true, terminating: false }],
    ['10.244.2.2', { ready: false, serving: false, terminating: false }],
    ['10.244.1.3', { ready: false, serving: true, terminating: true }],
  ]);
  assert.equal(by8080.metadata.labels?.['kubernetes.io/service-name'], 'web');
  assert.equal(by8080.metadata.ownerReferences?.[0]?.uid, 'web-uid');
  assert.deepEqual(desiredSlices(service('web', { selector: undefined }), [pod('a', 'web', '10.244.1.2')]), [], 'no selector: the owner writes the slices');
  const many = Array.from({ length: 250 }, (_, i) => pod(`p${i}`, 'web', `10.244.${1 + (i >> 8)}.${i & 255}`));
  assert.deepEqual(desiredSlices(svc, many).map((s) => s.endpoints.length), [MAX_ENDPOINTS_PER_SLICE, MAX_ENDPOINTS_PER_SLICE, 50]);
});

test('Service admission: defaults, a ClusterIP and NodePorts allocated, kept on update, refusals named', () => {
  const none = { clusterIPs: new Set<string>(), nodePorts: new Set<number>() };
  const created = admitService(service('web', { type: 'NodePort', ports: [{ port: 80 }, { port: 443, nodePort: 30443 }] }), undefined, none, '10.96.0.0/12');
  assert.match(created.spec.clusterIP!, /^10\.(9[6-9]|10[0-9]|11[01])\./);
  assert.equal(created.spec.externalTrafficPolicy, 'Cluster');
  assert.deepEqual(created.spec.ports!.map((p) => [p.protocol, p.targetPort, p.nodePort! >= 30000 && p.nodePort! <= 32767]), [['TCP', 80, true], ['TCP', 443, true]]);
  assert.equal(created.spec.ports![1]!.nodePort, 30443);
  const updated = admitService(service('web', { type: 'NodePort', ports: [{ port: 80 }] }), created, none, '10.96.0.0/12');
  assert.equal(updated.spec.clusterIP, created.spec.clusterIP, 'the ClusterIP stays');
  assert.equal(updated.spec.ports![0]!.nodePort, created.spec.ports![0]!.nodePort, 'so does the NodePort');
  assert.throws(() => admitService(service('x', { clusterIP: '10.96.0.10' }), undefined, { clusterIPs: new Set(['10.96.0.10']), nodePorts: new Set() }, '10.96.0.0/12'), (e: unknown) => e instanceof ServiceInvalid && /spec\.clusterIPs: Invalid value: \["10\.96\.0\.10"\]/.test(e.message));
  assert.throws(() => admitService(service('x', { type: 'NodePort', ports: [{ port: 80, nodePort: 80 }] }), undefined, none, '10.96.0.0/12'), /spec\.ports\[0\]\.nodePort: Invalid value: 80/);
  assert.throws(() => admitService({ ...created, spec: { ...created.spec, clusterIP: '10.96.0.99' } }, created, none, '10.96.0.0/12'), /may not change once set/);
});

/** A store with a namespace, an Api over it, and a proxier on a fake node with `backend`. */
async function proxyOnFake(tag: string, makeBackend: (ns: ReturnType<FakeDataplane['at']>) => ProxyBackend) {
  const store = new Store(join(scratch, `${tag}.db`));
  const api = new Api(store);
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  const dp = new FakeDataplane();
  const node = await dp.createNetns(`${tag}-node`);
  const backend = makeBackend(node as ReturnType<FakeDataplane['at']>);
  const logs: string[] = [];
  const proxier = new Proxier({ client: new LocalClient(api), nodeName: 'n1', netns: node, backend, log: (l) => logs.push(l), minSyncMs: 0, checkMs: 20 });
  // The fake has no sockets: the metrics endpoint is skipped (and says so), the proxy runs on.
  await proxier.start();
  const synced = async (n: number) => {
    for (let i = 0; i < 200 && (await syncCount(proxier)) < n; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok((await syncCount(proxier)) >= n, `sync ${n} happened`);
  };
  return { api, store, dp, node, proxier, logs, synced, stop: async () => { await proxier.stop(); store.close(); } };
}

async function syncCount(p: Proxier): Promise<number> {
  const m = await p.metrics.syncDuration.get();
  return m.values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
}

const slice = (svc: string, ips: string[], protocol: 'TCP' | 'UDP' = 'TCP'): EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${svc}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName: 'n1' })),
});

test('the proxy against the fake (nftables): full sync, then partial ones; a lost table is written again', async () => {
  let backend!: NftablesBackend;
  const p = await proxyOnFake('nft', (ns) => (backend = new NftablesBackend(ns, { clusterCIDR: '10.244.0.0/16', nodePodCIDR: '10.244.1.0/24' })));
  try {
    assert.ok(p.logs.some((l) => /no metrics endpoint/.test(l)));
    const web = p.api.create(service('web', { selector: undefined, clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80 }] }));
    p.api.create(slice('web', ['10.244.1.2', '10.244.1.3']));
    p.api.create(service('db', { selector: undefined, clusterIP: '10.96.0.21', ports: [{ name: 'http', port: 5432 }] }));
    await p.synced(1);
    for (let i = 0; i < 100 && !(await p.node.nftTable('kubewire'))?.includes('10.96.0.20'); i++) await new Promise((r) => setTimeout(r, 5));
    const table = (await p.node.nftTable('kubewire'))!;
    assert.match(table, /10\.96\.0\.20 \. tcp \. 80 : goto/, 'the ClusterIP is in the service map');
    assert.match(table, /10\.96\.0\.21 \. tcp \. 5432 : goto reject-chain/, 'a Service without endpoints is rejected');
    assert.equal(backend.lastSync.kind, 'full');
    // One endpoint goes: a partial sync of a few lines.
    p.api.update({ ...(p.api.get({ kind: 'EndpointSlice', namespace: 'default', name: 'web-1' }) as EndpointSlice), endpoints: [{ addresses: ['10.244.1.2'], conditions: { ready: true }, nodeName: 'n1' }] });
    for (let i = 0; i < 200 && (await p.node.nftTable('kubewire'))!.includes('10.244.1.3'); i++) await new Promise((r) => setTimeout(r, 5));
    assert.doesNotMatch((await p.node.nftTable('kubewire'))!, /10\.244\.1\.3/);
    assert.equal(backend.lastSync.kind, 'partial');
    assert.ok(backend.lastSync.lines < 20, `a one-endpoint change is a few lines (${backend.lastSync.lines})`);
    // Someone deletes the table: the check notices and the next sync writes it whole.
    await p.node.nft('delete table ip kubewire\n');
    for (let i = 0; i < 200 && !(await p.node.nftTables()).includes('kubewire'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok((await p.node.nftTables()).includes('kubewire'), 'restored');
    assert.ok(p.logs.some((l) => /rules are gone/.test(l)));
    p.api.delete({ kind: 'Service', namespace: 'default', name: web.metadata.name });
    for (let i = 0; i < 200 && (await p.node.nftTable('kubewire'))!.includes('10.96.0.20'); i++) await new Promise((r) => setTimeout(r, 5));
    assert.doesNotMatch((await p.node.nftTable('kubewire'))!, /10\.96\.0\.20/, 'a deleted Service leaves the map');
  } finally {
    await p.stop();
  }
});

test('the proxy against the fake (iptables): upstream chains accepted by the kernel checks; UDP flows to a gone endpoint deleted', async () => {
  const p = await proxyOnFake('ipt', (ns) => new IptablesBackend(ns, { clusterCIDR: '10.244.0.0/16', nodePodCIDR: '10.244.1.0/24' }, 'legacy'));
  try {
    p.api.create(service('dns', { selector: undefined, clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 53, protocol: 'UDP' }] }));
    p.api.create(slice('dns', ['10.244.1.5', '10.244.1.6'], 'UDP'));
    await p.synced(1);
    let nat = '';
    for (let i = 0; i < 200 && !(nat = await p.node.iptablesSave('nat', 4, 'legacy')).includes('10.244.1.6:8080'); i++) await new Promise((r) => setTimeout(r, 5));
    assert.match(nat, /-A KUBE-SERVICES -m comment --comment "default\/dns:http cluster IP" -m udp -p udp -d 10\.96\.0\.10 --dport 53 -j KUBE-SVC-/);
    assert.match(nat, /-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/, 'the jump from the built-in chain');
    // A client's flow to 10.244.1.6, which then goes away.
    (p.node as ReturnType<FakeDataplane['at']>).addConntrack({ protocol: 'udp', origDst: '10.96.0.10', origDstPort: 53, replySrc: '10.244.1.6' });
    (p.node as ReturnType<FakeDataplane['at']>).addConntrack({ protocol: 'udp', origDst: '10.96.0.10', origDstPort: 53, replySrc: '10.244.1.5' });
    p.api.update({ ...(p.api.get({ kind: 'EndpointSlice', namespace: 'default', name: 'dns-1' }) as EndpointSlice), endpoints: [{ addresses: ['10.244.1.5'], conditions: { ready: true }, nodeName: 'n1' }] });
    for (let i = 0; i < 200 && (await p.node.iptablesSave('nat', 4, 'legacy')).includes('10.244.1.6:8080'); i++) await new Promise((r) => setTimeout(r, 5));
    assert.doesNotMatch(await p.node.iptablesSave('nat', 4, 'legacy'), /10\.244\.1\.6/);
    for (let i = 0; i < 100 && (await p.node.conntrackDelete({ protocol: 'udp', replySrc: '10.244.1.6' })) !== 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(await p.node.conntrackDelete({ protocol: 'udp', replySrc: '10.244.1.5' }), 1, "the serving endpoint's flow was kept");
  } finally {
    await p.stop();
  }
});

test('the proxy against the fake (IPVS): VIPs on kube-ipvs0, the chosen scheduler, a removed endpoint drained until its connections are gone, a cleared IPVS restored', async () => {
  const p = await proxyOnFake('ipvs', (ns) => new IpvsBackend(ns, { clusterCIDR: '10.244.0.0/16', nodeIPs: ['172.18.0.11'], scheduler: 'mh' }, 'legacy'));
  try {
    p.api.create(service('web', { selector: undefined, clusterIP: '10.96.0.30', ports: [{ name: 'http', port: 80 }] }));
    p.api.create(slice('web', ['10.244.1.2', '10.244.1.3']));
    const until = async (what: string, ok: (save: string) => boolean) => {
      for (let i = 0; i < 400 && !ok(await p.node.ipvsSave()); i++) await new Promise((r) => setTimeout(r, 10));
      const save = await p.node.ipvsSave();
      assert.ok(ok(save), `${what}:\n${save}`);
      return save;
    };
    await until('a virtual server with two real servers', (s) => s.includes('-A -t 10.96.0.30:80 -s mh') && s.includes('10.244.1.3:8080 -m -w 1'));
    assert.deepEqual((await p.node.link('kube-ipvs0'))?.addr_info?.map((a) => a.local), ['10.96.0.30']);
    // A client still talks to 10.244.1.3 when its endpoint goes: no new connections, the open one kept.
    const fake = p.node as ReturnType<FakeDataplane['at']>;
    fake.setIpvsConnections('-t 10.96.0.30:80 -r 10.244.1.3:8080', 1);
    p.api.update({ ...(p.api.get({ kind: 'EndpointSlice', namespace: 'default', name: 'web-1' }) as EndpointSlice), endpoints: [{ addresses: ['10.244.1.2'], conditions: { ready: true }, nodeName: 'n1' }] });
    await until('drained: weight 0', (s) => s.includes('-a -t 10.96.0.30:80 -r 10.244.1.3:8080 -m -w 0'));
    // Its connection ends: a later sync (no API change) deletes it.
    fake.setIpvsConnections('-t 10.96.0.30:80 -r 10.244.1.3:8080', 0);
    const save = await until('deleted once idle', (s) => !s.includes('10.244.1.3'));
    assert.match(save, /-a -t 10\.96\.0\.30:80 -r 10\.244\.1\.2:8080 -m -w 1/, 'the other stays');
    // Someone clears IPVS (ipvsadm -C): the check notices, a full sync reads the kernel and puts it back.
    await p.node.ipvsRestore(['-D -t 10.96.0.30:80']);
    await until('restored after a clear', (s) => s.includes('-a -t 10.96.0.30:80 -r 10.244.1.2:8080 -m -w 1'));
  } finally {
    await p.stop();
  }
});
