// `kubewire describe service` and the page's details name the same rules, in every proxy mode:
// both print the backend's own answer to "which rules carry this Service" (src/proxy/carry.ts).
// Against the fake dataplane, with the rules the real backends write (no root).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EndpointSlice, Service } from '../src/api/types.ts';
import type { ObjectClient } from '../src/apiserver/objects.ts';
import { describeService } from '../src/cli/describe.ts';
import type { ClusterPlan } from '../src/cluster/plan.ts';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';
import { netnsPath } from '../src/dataplane/port.ts';
import { IptablesBackend } from '../src/proxy/iptables/backend.ts';
import { IpvsBackend } from '../src/proxy/ipvs/backend.ts';
import { buildServicePorts } from '../src/proxy/model.ts';
import { NftablesBackend } from '../src/proxy/nftables/backend.ts';
import type { ProxyBackend } from '../src/proxy/proxier.ts';
import { details } from '../src/ui/details.ts';

const service = (name: string, clusterIP: string, nodePort?: number): Service => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', uid: `${name}-uid` },
  spec: { type: nodePort ? 'NodePort' : 'ClusterIP', clusterIP, clusterIPs: [clusterIP], selector: { app: name }, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, ...(nodePort ? { nodePort } : {}) }] },
});
const slice = (svc: string, ips: string[]): EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${svc}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], nodeName: 'kobs-node-1', conditions: { ready: true, serving: true, terminating: false } })),
});

const web = service('web', '10.96.0.20', 30080);
const other = service('other', '10.96.0.30');
const slices = [slice('web', ['10.244.1.2', '10.244.1.3']), slice('other', ['10.244.1.4'])];
const noEvents = { list: async () => ({ items: [] }) } as unknown as ObjectClient;

const backends: Record<'iptables' | 'nftables' | 'ipvs', (ns: ReturnType<FakeDataplane['at']>) => ProxyBackend> = {
  iptables: (ns) => new IptablesBackend(ns, { clusterCIDR: '10.244.0.0/16', nodePodCIDR: '10.244.1.0/24' }, 'legacy'),
  nftables: (ns) => new NftablesBackend(ns, { clusterCIDR: '10.244.0.0/16', nodePodCIDR: '10.244.1.0/24' }),
  ipvs: (ns) => new IpvsBackend(ns, { clusterCIDR: '10.244.0.0/16', nodeIPs: ['172.18.0.11'] }, 'legacy'),
};

for (const mode of ['iptables', 'nftables', 'ipvs'] as const) {
  test(`${mode} mode: describe service and the page name the same rules, the Service's and no other's`, async () => {
    const dp = new FakeDataplane();
    const node = await dp.createNetns('kw_kobs_node-1');
    await backends[mode](dp.at(node.path)).apply(buildServicePorts([web, other], slices, 'kobs-node-1'));
    const plan = { spec: { name: 'kobs', proxyMode: mode, iptablesBackend: 'legacy' }, nodes: [{ name: 'kobs-node-1', netns: 'kw_kobs_node-1' }] } as unknown as ClusterPlan;
    assert.equal(netnsPath('kw_kobs_node-1'), node.path);

    const described = (await describeService(dp, web, [slices[0]!], plan)).split('\n');
    const heading = described.findIndex((l) => / on kobs-node-1 \(/.test(l));
    assert.ok(heading >= 0, described.join('\n'));
    const fromDescribe = described.slice(heading + 1).map((l) => l.trim());

    const page = await details({ client: noEvents, plan, dp }, { data: { id: 'svc/default/web', kind: 'service', label: 'web' } } as never, { pods: [], services: [web, other], slices, ingresses: [] });
    const at = page.findIndex((l) => / on kobs-node-1 \(/.test(l));
    assert.equal(page[at], `${described[heading]}`, 'the same heading');
    const after = page.slice(at + 1);
    const end = after.findIndex((l) => !l.startsWith('  '));
    const fromPage = after.slice(0, end < 0 ? undefined : end).map((l) => l.trim());

    assert.ok(fromDescribe.length > 0 && fromDescribe[0] !== '<none>', `${mode}: rules found`);
    assert.deepEqual(fromPage, fromDescribe);
    assert.ok(fromDescribe.some((l) => l.includes('10.96.0.20')), 'its ClusterIP');
    assert.ok(fromDescribe.some((l) => l.includes('30080')), 'its NodePort');
    assert.ok(!fromDescribe.some((l) => l.includes('10.96.0.30') || l.includes('default/other')), "not the other Service's");
  });
}
