// The VPC's source check as data (no kernel): which sources each node port lets out, the
// verdict for a frame, the nft transaction that programs it, and how trace reads its rules back.
//
// Address plan: the VPC 172.18.0.0/16; nodes 172.18.0.11-12 (MACs 0a:6b:77:00:00:01-02), the
// client 172.18.0.200; secondary addresses from 172.18.1.1; 203.0.113.10 outside the VPC.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Netns } from '../src/dataplane/port.ts';
import { DEFAULT_SPEC, planCluster } from '../src/cluster/plan.ts';
import { clusterFabric } from '../src/trace/trace.ts';
import { allowScript, parseCheckRule, sourceCheckScript, sourceChecks, sourceVerdict } from '../src/vpc/source-check.ts';
import { Vpc } from '../src/vpc/vpc.ts';

const plan = planCluster({ ...DEFAULT_SPEC, name: 'v', nodes: 2, mode: 'vpc' });
const record = { '172.18.1.1': 'v-node-1', '172.18.1.2': 'v-node-2', '172.18.1.10': 'v-node-1' };

test("each node port lets out its primary address and the secondary ones the VPC gave it; the client's port is not checked", () => {
  assert.deepEqual(sourceChecks(plan, record), [
    { port: 'node1', node: 'v-node-1', mac: '0a:6b:77:00:00:01', addresses: ['172.18.0.11', '172.18.1.1', '172.18.1.10'] },
    { port: 'node2', node: 'v-node-2', mac: '0a:6b:77:00:00:02', addresses: ['172.18.0.12', '172.18.1.2'] },
  ]);
});

test('the verdict, as EC2 checks an ENI: its MAC, then an address assigned to it (another pod of the same node passes)', () => {
  const checks = sourceChecks(plan, record);
  const mac1 = '0a:6b:77:00:00:01';
  const cases: Array<[string, string, string | undefined, string | true]> = [
    ['node1', mac1, '172.18.0.11', true],
    ['node1', mac1, '172.18.1.10', true],
    ['node1', mac1.toUpperCase(), '172.18.1.1', true],
    ['node1', mac1, undefined, true],
    ['external', '0a:6b:77:00:00:c8', '203.0.113.10', true],
    ['node1', mac1, '172.18.1.2', "dropped by the VPC's source check: 172.18.1.2 is not assigned to v-node-1's interface (port node1)"],
    ['node1', mac1, '172.18.250.250', "dropped by the VPC's source check: 172.18.250.250 is not assigned to v-node-1's interface (port node1)"],
    ['node1', mac1, '203.0.113.10', "dropped by the VPC's source check: 203.0.113.10 is not assigned to v-node-1's interface (port node1)"],
    ['node1', '0a:6b:77:00:00:99', '172.18.0.11', "dropped by the VPC's source check: source MAC 0a:6b:77:00:00:99 is not v-node-1's interface's (0a:6b:77:00:00:01, port node1)"],
    ['node2', mac1, '172.18.1.2', "dropped by the VPC's source check: source MAC 0a:6b:77:00:00:01 is not v-node-2's interface's (0a:6b:77:00:00:02, port node2)"],
  ];
  for (const [port, mac, ip, want] of cases) {
    const v = sourceVerdict(checks, port, mac, ip);
    assert.deepEqual(v.allowed ? true : v.reason, want, `${port} ${mac} ${ip}`);
  }
});

test('the table is one idempotent transaction: sets and chains flushed and filled again, named counters kept', () => {
  const script = sourceCheckScript(sourceChecks(plan, record)).trim().split('\n');
  assert.equal(script[0], 'add table bridge kubewire-vpc');
  assert.ok(!script.some((l) => /^(delete|destroy) /.test(l)), 'nothing deleted: counters survive a restart');
  assert.ok(script.includes('add chain bridge kubewire-vpc source-check { type filter hook prerouting priority 10; policy accept; }'), 'after br_netfilter (priority 0): a traced packet is marked when it gets there');
  assert.ok(script.includes('add element bridge kubewire-vpc assigned_node1 { 172.18.0.11, 172.18.1.1, 172.18.1.10 }'));
  assert.ok(script.indexOf('flush set bridge kubewire-vpc assigned_node1') < script.indexOf('add element bridge kubewire-vpc assigned_node1 { 172.18.0.11, 172.18.1.1, 172.18.1.10 }'));
  assert.ok(script.includes('add rule bridge kubewire-vpc source-check iifname "node2" jump port_node2'));
  assert.ok(script.includes(`add rule bridge kubewire-vpc port_node2 ether saddr != 0a:6b:77:00:00:02 counter name "spoofed_mac_node2" drop comment "the VPC's source check: not v-node-2's MAC"`));
  assert.ok(script.includes(`add rule bridge kubewire-vpc port_node2 ip saddr != @assigned_node2 counter name "spoofed_ip_node2" drop comment "the VPC's source check: not assigned to v-node-2"`));
  assert.ok(!script.some((l) => l.includes('external')), 'the world outside is no ENI');
  assert.equal(allowScript('node1', 'add', ['172.18.1.3', '172.18.1.4']), 'add element bridge kubewire-vpc assigned_node1 { 172.18.1.3, 172.18.1.4 }\n');
  assert.equal(allowScript('node2', 'delete', ['172.18.1.2']), 'delete element bridge kubewire-vpc assigned_node2 { 172.18.1.2 }\n');
  assert.equal(allowScript('node2', 'delete', []), '');
});

test("trace reads the check's rule back and says the true cause; other rules and other modes are left to the generic words", () => {
  const rule = `ip saddr != @assigned_node1 counter name "spoofed_ip_node1" drop comment "the VPC's source check: not assigned to v-node-1"`;
  assert.deepEqual(parseCheckRule(rule), { port: 'node1', cause: 'ip' });
  assert.deepEqual(parseCheckRule('ether saddr != 0a:6b:77:00:00:02 counter name "spoofed_mac_node2" drop'), { port: 'node2', cause: 'mac' });
  assert.equal(parseCheckRule('meta l4proto tcp drop'), undefined);
  const network = { kind: 'network' as const, name: 'network', netns: '/run/netns/kw_v_network' };
  const fabric = clusterFabric(plan);
  assert.equal(fabric.dropReason?.(network, rule, { saddr: '172.18.1.2', daddr: '172.18.1.7' }), "dropped by the VPC's source check: 172.18.1.2 is not assigned to v-node-1's interface (port node1)");
  assert.equal(fabric.dropReason?.(network, 'ether saddr != 0a:6b:77:00:00:01 counter name "spoofed_mac_node1" drop', { etherSaddr: '0a:6b:77:00:00:99' }), "dropped by the VPC's source check: source MAC 0a:6b:77:00:00:99 is not v-node-1's interface's (0a:6b:77:00:00:01, port node1)");
  assert.equal(fabric.dropReason?.(network, 'meta l4proto tcp drop', { saddr: '172.18.1.2' }), undefined);
  const routed = clusterFabric(planCluster({ ...DEFAULT_SPEC, name: 'r', nodes: 2 }));
  assert.equal(routed.dropReason?.(network, rule, { saddr: '172.18.1.2' }), undefined);
});

test('the VPC keeps the check with its record: allowed before an address is returned, dropped once taken back, all of it again when a change fails', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwv-vpc-'));
  const scripts: string[] = [];
  let refuse = false;
  const network = {
    apply: async () => undefined,
    nft: async (script: string) => {
      if (refuse && script.startsWith('delete element')) throw new Error('Error: Could not process rule: No such file or directory');
      scripts.push(script);
    },
  } as unknown as Netns;
  try {
    const vpc = new Vpc(plan, network, join(dir, 'vpc.json'), () => undefined);
    await vpc.start();
    assert.equal(scripts.length, 1);
    assert.match(scripts[0]!, /add element bridge kubewire-vpc assigned_node1 \{ 172\.18\.0\.11 \}/);
    const node1 = plan.nodes[0]!;
    assert.deepEqual(await vpc.assign(node1, 2), ['172.18.1.1', '172.18.1.2']);
    assert.equal(scripts.at(-1), 'add element bridge kubewire-vpc assigned_node1 { 172.18.1.1, 172.18.1.2 }\n');
    await vpc.unassign(node1, ['172.18.1.2']);
    assert.equal(scripts.at(-1), 'delete element bridge kubewire-vpc assigned_node1 { 172.18.1.2 }\n');
    refuse = true;
    await vpc.unassign(node1, ['172.18.1.1']);
    assert.match(scripts.at(-1)!, /^add table bridge kubewire-vpc\n/, 'the whole check written again from the record');
    assert.match(scripts.at(-1)!, /add element bridge kubewire-vpc assigned_node1 \{ 172\.18\.0\.11 \}\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a kernel that refuses the table (UML's, without nf_tables for bridges): the VPC runs without the check and says so", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwv-vpc-'));
  const log: string[] = [];
  let calls = 0;
  const network = { apply: async () => undefined, nft: async () => { calls++; throw new Error('Error: Could not process rule: Operation not supported\nadd table bridge kubewire-vpc'); } } as unknown as Netns;
  try {
    const vpc = new Vpc(plan, network, join(dir, 'vpc.json'), (l) => log.push(l));
    await vpc.start();
    await vpc.assign(plan.nodes[0]!, 1);
    assert.equal(calls, 1, 'not asked again at each assignment');
    assert.ok(log.some((l) => l === 'vpc: the source check is off, frames of any source cross the VPC: Error: Could not process rule: Operation not supported'), log.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
