// kubewire's nftables table as data: what a Service becomes (map elements for plain ones,
// chains only where policies need them), and every shape accepted by the kernel's nft
// (checked with `nft -c` in a namespace the test makes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { run } from '../src/dataplane/linux/exec.ts';
import type { ServicePortInfo } from '../src/proxy/model.ts';
import { chainName, NftState } from '../src/proxy/nftables/rules.ts';

import { NOT_ROOT } from './helpers.ts';

const sp = (over: Partial<ServicePortInfo>): ServicePortInfo => ({ namespace: 'ns1', name: 'svc1', portName: 'p80', protocol: 'tcp', port: 80, externalIPs: [], externalLocal: false, internalLocal: false, endpoints: [], ...over });
const ep = (ip: string, port: number, local = false) => ({ ip, port, ready: true, serving: true, terminating: false, local });
const cfg = { clusterCIDR: '10.0.0.0/8', nodePodCIDR: '10.0.1.0/24' };
/** The whole table for these ports, as a first sync writes it. */
const fullScript = (ports: ServicePortInfo[]) => new NftState(cfg).full(ports).script;

const FIXTURE: ServicePortInfo[] = [
  sp({ clusterIP: '172.30.0.41', endpoints: [ep('10.0.1.1', 80), ep('10.0.2.1', 80)] }),
  sp({ name: 'svc2', clusterIP: '172.30.0.42', endpoints: [ep('10.0.1.2', 8080)] }),
  sp({ name: 'np', clusterIP: '172.30.0.43', nodePort: 30080, externalIPs: ['192.0.2.10'], endpoints: [ep('10.0.1.3', 80), ep('10.0.2.3', 80)] }),
  sp({ name: 'sticky', clusterIP: '172.30.0.44', affinitySeconds: 10800, endpoints: [ep('10.0.1.4', 80), ep('10.0.2.4', 80)] }),
  sp({ name: 'local', clusterIP: '172.30.0.45', nodePort: 30081, externalLocal: true, internalLocal: true, endpoints: [ep('10.0.1.5', 80, true), ep('10.0.2.5', 80)] }),
  sp({ name: 'nolocal', clusterIP: '172.30.0.46', nodePort: 30082, externalLocal: true, endpoints: [ep('10.0.2.6', 80)] }),
  sp({ name: 'dns', protocol: 'udp', portName: 'dns', port: 53, clusterIP: '172.30.0.47', endpoints: [ep('10.0.1.7', 53), ep('10.0.2.7', 53), ep('10.0.3.7', 53)] }),
  sp({ name: 'empty', clusterIP: '172.30.0.48', nodePort: 30083 }),
];

test('plain Services are map elements in the group of their endpoint count; no chain of their own', () => {
  const script = fullScript(FIXTURE);
  assert.match(script, /172\.30\.0\.41 \. tcp \. 80 : goto group-2/);
  assert.match(script, /172\.30\.0\.41 \. tcp \. 80 \. 0 : 10\.0\.1\.1 \. 80,\s+172\.30\.0\.41 \. tcp \. 80 \. 1 : 10\.0\.2\.1 \. 80/);
  assert.match(script, /typeof ip daddr \. meta l4proto \. th dport \. numgen random mod 3 : ip daddr \. th dport/);
  assert.ok(!script.includes(chainName('service', 'ns1/svc1/tcp/p80')));
  assert.match(script, /chain group-2 \{\n\s+ip saddr != 10\.0\.0\.0\/8 jump mark-for-masquerade\n\s+dnat ip to ip daddr \. meta l4proto \. th dport \. numgen random mod 2 map @backends-2/);
  assert.match(script, /10\.0\.1\.1 \. 10\.0\.1\.1/, 'hairpin pair');
});

test('NodePorts, external IPs, affinity and Local policies get chains; missing endpoints reject or drop', () => {
  const script = fullScript(FIXTURE);
  const ext = chainName('external', 'ns1/np/tcp/p80');
  assert.match(script, new RegExp(`tcp \\. 30080 : goto ${ext}`));
  assert.match(script, new RegExp(`192\\.0\\.2\\.10 \\. tcp \\. 80 : goto ${ext}`));
  const sticky = chainName('service', 'ns1/sticky/tcp/p80');
  assert.match(script, new RegExp(`chain ${sticky} \\{[^}]*ip saddr @affinity-\\w+-ns1/sticky/tcp/p80__10\\.0\\.1\\.4/80 goto endpoint-`));
  assert.match(script, /flags dynamic,timeout\n\s+timeout 10800s/);
  assert.match(script, new RegExp(`172\\.30\\.0\\.45 \\. tcp \\. 80 : goto ${chainName('local', 'ns1/local/tcp/p80')}`), 'internalTrafficPolicy Local: only local endpoints');
  assert.match(script, /tcp \. 30082 : drop/, 'eTP Local without a local endpoint drops outside traffic');
  assert.match(script, /172\.30\.0\.48 \. tcp \. 80 : goto reject-chain/);
  assert.match(script, /tcp \. 30083 : goto reject-chain/);
});

test('the whole table is accepted by nft (checked, not applied, in a scratch namespace)', { skip: NOT_ROOT }, async () => {
  const ns = `kwt-nftc-${process.pid}`;
  await run(['ip', 'netns', 'add', ns]);
  try {
    await run(['nft', '-c', '-f', '-'], { netns: `/var/run/netns/${ns}`, input: fullScript(FIXTURE) });
    await run(['nft', '-c', '-f', '-'], { netns: `/var/run/netns/${ns}`, input: fullScript([]) });
  } finally {
    await run(['ip', 'netns', 'del', ns]);
  }
});

test('a partial sync leaves the kernel exactly as a full one would (diff applied on the real nft)', { skip: NOT_ROOT }, async () => {
  const { buildTable, NftState, renderFull } = await import('../src/proxy/nftables/rules.ts');
  const next: ServicePortInfo[] = [
    sp({ clusterIP: '172.30.0.41', endpoints: [ep('10.0.1.1', 80), ep('10.0.2.1', 80), ep('10.0.3.1', 80)] }), // 2 -> 3 endpoints: changes group
    FIXTURE[1]!, // unchanged: the same object, as the proxier hands it over
    sp({ name: 'sticky', clusterIP: '172.30.0.44', affinitySeconds: 10800, endpoints: [ep('10.0.2.4', 80)] }), // loses an endpoint chain
    sp({ name: 'local', clusterIP: '172.30.0.45', nodePort: 30081, externalLocal: true, internalLocal: true, endpoints: [ep('10.0.2.5', 80)] }), // loses its local endpoint
    FIXTURE[6]!, // unchanged
    sp({ name: 'empty', clusterIP: '172.30.0.48', nodePort: 30083, endpoints: [ep('10.0.9.9', 80)] }), // gets one
    sp({ name: 'new', clusterIP: '172.30.0.49', externalIPs: ['192.0.2.11'], endpoints: [ep('10.0.5.5', 80), ep('10.0.5.6', 80)] }),
  ]; // np and nolocal are gone
  const normalize = (listing: string) => listing.split('\n').map((l) => l.trim().replace(/^elements = \{ /, '').replace(/[,}]+$/, '').trim()).filter(Boolean).sort();
  const a = `kwt-nfta-${process.pid}`;
  const b = `kwt-nftb-${process.pid}`;
  await run(['ip', 'netns', 'add', a]);
  await run(['ip', 'netns', 'add', b]);
  try {
    const state = new NftState(cfg);
    await run(['nft', '-f', '-'], { netns: `/var/run/netns/${a}`, input: state.full(FIXTURE).script });
    const diff = state.update(next);
    assert.ok(diff.split('\n').length < 60, 'a diff, not the table');
    assert.ok(!diff.includes('172.30.0.42') && !diff.includes('172.30.0.47'), 'unchanged Services are not touched');
    await run(['nft', '-f', '-'], { netns: `/var/run/netns/${a}`, input: diff });
    await run(['nft', '-f', '-'], { netns: `/var/run/netns/${b}`, input: renderFull(buildTable(next, cfg)) });
    const [got, want] = await Promise.all([a, b].map((ns) => run(['nft', 'list', 'table', 'ip', 'kubewire'], { netns: `/var/run/netns/${ns}` })));
    assert.deepEqual(normalize(got!), normalize(want!));
    assert.equal(state.update(next), '', 'no change, no transaction');
    // And back again: groups that empty lose their chain and map.
    const back = state.update(FIXTURE);
    await run(['nft', '-f', '-'], { netns: `/var/run/netns/${a}`, input: back });
    await run(['nft', '-f', '-'], { netns: `/var/run/netns/${b}`, input: renderFull(buildTable(FIXTURE, cfg)) });
    const [got2, want2] = await Promise.all([a, b].map((ns) => run(['nft', 'list', 'table', 'ip', 'kubewire'], { netns: `/var/run/netns/${ns}` })));
    assert.deepEqual(normalize(got2!), normalize(want2!));
  } finally {
    await run(['ip', 'netns', 'del', a]);
    await run(['ip', 'netns', 'del', b]);
  }
});
