// kube-proxy's IPVS mode as data (this kernel has no IP_VS): virtual and real servers per
// Service address, persistence for affinity, Local policies, the ipsets and the iptables
// rules around them — the ipsets and rules loaded for real in a scratch namespace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { run } from '../src/dataplane/linux/exec.ts';
import type { ServicePortInfo } from '../src/proxy/model.ts';
import { applyIpvsLines, buildIpvsConfig, desiredIpvs, ipsetDiff, ipsetRestore, ipsetSwapRestore, ipvsadmDiff, ipvsadmRules, parseIpvsSave, removedRealServers } from '../src/proxy/ipvs/config.ts';
import { parseIpvsList } from '../src/dataplane/linux/host.ts';
import { NOT_ROOT } from './helpers.ts';

const sp = (over: Partial<ServicePortInfo>): ServicePortInfo => ({ namespace: 'ns1', name: 'svc1', portName: 'p80', protocol: 'tcp', port: 80, externalIPs: [], externalLocal: false, internalLocal: false, endpoints: [], ...over });
const ep = (ip: string, port: number, local = false) => ({ ip, port, ready: true, serving: true, terminating: false, local });
const opts = { clusterCIDR: '10.244.0.0/16', nodeIPs: ['172.18.0.11'] };
const FIXTURE = [
  sp({ clusterIP: '10.96.0.10', endpoints: [ep('10.244.0.2', 8080), ep('10.244.1.2', 8080)] }),
  sp({ name: 'np', clusterIP: '10.96.0.11', nodePort: 30080, externalIPs: ['192.0.2.10'], affinitySeconds: 600, endpoints: [ep('10.244.0.3', 80, true), ep('10.244.1.3', 80)] }),
  sp({ name: 'local', clusterIP: '10.96.0.12', nodePort: 30081, externalLocal: true, internalLocal: true, endpoints: [ep('10.244.0.4', 80, true), ep('10.244.1.4', 80)] }),
  sp({ name: 'dns', protocol: 'udp', portName: 'dns', port: 53, clusterIP: '10.96.0.13', endpoints: [ep('10.244.0.5', 53)] }),
];

test('a virtual server per Service address, a real server per endpoint, persistence for ClientIP affinity', () => {
  const cfg = buildIpvsConfig(FIXTURE, opts);
  assert.deepEqual(cfg.addresses, ['10.96.0.10', '10.96.0.11', '192.0.2.10', '10.96.0.12', '10.96.0.13']);
  assert.equal(ipvsadmRules(cfg), [
    '-A -t 10.96.0.10:80 -s rr',
    '-a -t 10.96.0.10:80 -r 10.244.0.2:8080 -m -w 1',
    '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
    '-A -t 10.96.0.11:80 -s rr -p 600',
    '-a -t 10.96.0.11:80 -r 10.244.0.3:80 -m -w 1',
    '-a -t 10.96.0.11:80 -r 10.244.1.3:80 -m -w 1',
    '-A -t 192.0.2.10:80 -s rr -p 600',
    '-a -t 192.0.2.10:80 -r 10.244.0.3:80 -m -w 1',
    '-a -t 192.0.2.10:80 -r 10.244.1.3:80 -m -w 1',
    '-A -t 172.18.0.11:30080 -s rr -p 600',
    '-a -t 172.18.0.11:30080 -r 10.244.0.3:80 -m -w 1',
    '-a -t 172.18.0.11:30080 -r 10.244.1.3:80 -m -w 1',
    '-A -t 10.96.0.12:80 -s rr',
    '-a -t 10.96.0.12:80 -r 10.244.0.4:80 -m -w 1',
    '-A -t 172.18.0.11:30081 -s rr',
    '-a -t 172.18.0.11:30081 -r 10.244.0.4:80 -m -w 1',
    '-A -u 10.96.0.13:53 -s rr',
    '-a -u 10.96.0.13:53 -r 10.244.0.5:53 -m -w 1',
    '',
  ].join('\n'));
  assert.deepEqual(cfg.ipsets.get('KUBE-CLUSTER-IP')!.entries, ['10.96.0.10,tcp:80', '10.96.0.11,tcp:80', '10.96.0.12,tcp:80', '10.96.0.13,udp:53']);
  assert.deepEqual(cfg.ipsets.get('KUBE-NODE-PORT-TCP')!.entries, ['30080', '30081']);
  assert.deepEqual(cfg.ipsets.get('KUBE-NODE-PORT-LOCAL-TCP')!.entries, ['30081']);
  assert.ok(cfg.ipsets.get('KUBE-LOOP-BACK')!.entries.includes('10.244.0.2,tcp:8080,10.244.0.2'));
});

test('the ipsets and iptables rules of IPVS mode load for real (ipset restore, iptables-restore with -m set)', { skip: NOT_ROOT }, async () => {
  const ns = `kwt-ipvs-${process.pid}`;
  const path = `/var/run/netns/${ns}`;
  await run(['ip', 'netns', 'add', ns]);
  try {
    const cfg = buildIpvsConfig(FIXTURE, opts);
    await run(['ipset', 'restore', '-exist'], { netns: path, input: ipsetRestore(cfg) });
    const listed = await run(['ipset', 'list', 'KUBE-CLUSTER-IP'], { netns: path });
    for (const e of cfg.ipsets.get('KUBE-CLUSTER-IP')!.entries) assert.ok(listed.includes(e), e);
    await run(['iptables-restore', '-w', '--noflush'], { netns: path, input: cfg.iptables });
    const save = await run(['iptables-save', '-t', 'nat'], { netns: path });
    assert.match(save, /-A KUBE-POSTROUTING .*-m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE/);
    assert.match(save, /-A KUBE-SERVICES ! -s 10\.244\.0\.0\/16 .*-m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ/);
  } finally {
    await run(['ip', 'netns', 'del', ns]);
  }
});

test('ipvsadm diff: add what is missing, edit what changed, delete what is stale, leave the rest', () => {
  const cfg = buildIpvsConfig(FIXTURE.slice(0, 2), opts);
  const current = [
    '-A -t 10.96.0.10:80 -s rr',
    '-a -t 10.96.0.10:80 -r 10.244.0.2:8080 -m -w 1', // stays
    '-a -t 10.96.0.10:80 -r 10.244.9.9:8080 -m -w 1', // endpoint gone
    '-A -t 10.96.0.11:80 -s rr', // affinity added since
    '-A -t 10.96.0.99:80 -s rr', // Service gone
    '-a -t 10.96.0.99:80 -r 10.244.0.9:80 -m -w 1',
  ].join('\n');
  assert.deepEqual(ipvsadmDiff(parseIpvsSave(current), desiredIpvs(cfg)), [
    '-E -t 10.96.0.11:80 -s rr -p 600',
    '-A -t 192.0.2.10:80 -s rr -p 600',
    '-A -t 172.18.0.11:30080 -s rr -p 600',
    '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
    '-a -t 10.96.0.11:80 -r 10.244.0.3:80 -m -w 1',
    '-a -t 10.96.0.11:80 -r 10.244.1.3:80 -m -w 1',
    '-a -t 192.0.2.10:80 -r 10.244.0.3:80 -m -w 1',
    '-a -t 192.0.2.10:80 -r 10.244.1.3:80 -m -w 1',
    '-a -t 172.18.0.11:30080 -r 10.244.0.3:80 -m -w 1',
    '-a -t 172.18.0.11:30080 -r 10.244.1.3:80 -m -w 1',
    '-d -t 10.96.0.10:80 -r 10.244.9.9:8080',
    '-D -t 10.96.0.99:80',
  ]);
  assert.deepEqual(ipvsadmDiff(parseIpvsSave(ipvsadmRules(cfg)), desiredIpvs(cfg)), [], 'in sync: nothing to do');
});

test('incremental syncs: the diff applied to what the kernel held gives what is wanted; ipset entries added and deleted', () => {
  const before = buildIpvsConfig(FIXTURE, opts);
  const after = buildIpvsConfig([FIXTURE[0]!, { ...FIXTURE[1]!, endpoints: [ep('10.244.0.3', 80, true)] }, FIXTURE[3]!], opts);
  const have = parseIpvsSave(ipvsadmRules(before));
  const lines = ipvsadmDiff(have, desiredIpvs(after));
  assert.deepEqual(applyIpvsLines(have, lines), desiredIpvs(after), 'the backend\'s record of the kernel after the restore');
  assert.ok(lines.includes('-D -t 10.96.0.12:80'), 'the Service that went');
  const sets = new Map([...before.ipsets].map(([name, set]) => [name, new Set(set.entries)]));
  const changes = ipsetDiff(sets, after).split('\n').filter(Boolean);
  assert.ok(changes.includes('del KUBE-CLUSTER-IP 10.96.0.12,tcp:80'));
  assert.ok(changes.includes('del KUBE-NODE-PORT-LOCAL-TCP 30081'));
  assert.ok(changes.every((l) => /^del /.test(l)), `only deletions: ${changes.join('; ')}`);
  assert.equal(ipsetDiff(new Map([...after.ipsets].map(([name, set]) => [name, new Set(set.entries)])), after), '', 'in step: nothing');
});

test('graceful termination: a TCP real server that goes with connections open is drained (weight 0), deleted once idle; UDP goes at once', () => {
  const cfg = buildIpvsConfig([sp({ clusterIP: '10.96.0.10', endpoints: [ep('10.244.0.2', 8080)] }), sp({ name: 'dns', protocol: 'udp', port: 53, clusterIP: '10.96.0.13', endpoints: [] })], opts);
  const current = [
    '-A -t 10.96.0.10:80 -s rr',
    '-a -t 10.96.0.10:80 -r 10.244.0.2:8080 -m -w 1',
    '-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1',
    '-A -u 10.96.0.13:53 -s rr',
    '-a -u 10.96.0.13:53 -r 10.244.0.5:53 -m -w 1',
  ].join('\n');
  assert.deepEqual(removedRealServers(parseIpvsSave(current), desiredIpvs(cfg)), ['-t 10.96.0.10:80 -r 10.244.1.2:8080', '-u 10.96.0.13:53 -r 10.244.0.5:53']);
  const busy = new Map([['-t 10.96.0.10:80 -r 10.244.1.2:8080', 3], ['-u 10.96.0.13:53 -r 10.244.0.5:53', 5]]);
  assert.deepEqual(ipvsadmDiff(parseIpvsSave(current), desiredIpvs(cfg), busy), ['-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0', '-d -u 10.96.0.13:53 -r 10.244.0.5:53']);
  const drained = current.replace('10.244.1.2:8080 -m -w 1', '10.244.1.2:8080 -m -w 0');
  assert.deepEqual(ipvsadmDiff(parseIpvsSave(drained), desiredIpvs(cfg), busy), ['-d -u 10.96.0.13:53 -r 10.244.0.5:53'], 'already at weight 0: left to drain');
  assert.deepEqual(ipvsadmDiff(parseIpvsSave(drained), desiredIpvs(cfg), new Map()), ['-d -t 10.96.0.10:80 -r 10.244.1.2:8080', '-d -u 10.96.0.13:53 -r 10.244.0.5:53'], 'idle: deleted');
  const back = buildIpvsConfig([sp({ clusterIP: '10.96.0.10', endpoints: [ep('10.244.0.2', 8080), ep('10.244.1.2', 8080)] })], opts);
  assert.ok(ipvsadmDiff(parseIpvsSave(drained), desiredIpvs(back), busy).includes('-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1'), 'an endpoint that comes back gets its weight back');
});

test('ipvsadm -Ln: connections per real server, keyed as the save format', () => {
  const text = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    'TCP  10.96.0.10:80 rr',
    '  -> 10.244.0.2:8080              Masq    1      2          1',
    '  -> 10.244.1.2:8080              Masq    0      0          4',
    'UDP  10.96.0.13:53 rr persistent 600',
    '  -> 10.244.0.5:53                Masq    1      0          0',
  ].join('\n');
  assert.deepEqual([...parseIpvsList(text)], [
    ['-t 10.96.0.10:80 -r 10.244.0.2:8080', 3],
    ['-t 10.96.0.10:80 -r 10.244.1.2:8080', 4],
    ['-u 10.96.0.13:53 -r 10.244.0.5:53', 0],
  ]);
});

test('scheduler and strict ARP: --ipvs-scheduler names every virtual server\'s scheduler, --ipvs-strict-arp sets arp_ignore/arp_announce', () => {
  const cfg = buildIpvsConfig(FIXTURE.slice(0, 1), { ...opts, scheduler: 'mh', strictARP: true });
  assert.ok(ipvsadmRules(cfg).startsWith('-A -t 10.96.0.10:80 -s mh\n'));
  assert.equal(cfg.sysctls['net/ipv4/conf/all/arp_ignore'], '1');
  assert.equal(cfg.sysctls['net/ipv4/conf/all/arp_announce'], '2');
  assert.equal(buildIpvsConfig(FIXTURE.slice(0, 1), opts).sysctls['net/ipv4/conf/all/arp_ignore'], undefined, 'off by default, as in kube-proxy');
});

test('ipsets are swapped in whole (loaded for real twice: the second replaces the first)', { skip: NOT_ROOT }, async () => {
  const ns = `kwt-ipset-${process.pid}`;
  const path = `/var/run/netns/${ns}`;
  await run(['ip', 'netns', 'add', ns]);
  try {
    await run(['ipset', 'restore', '-exist'], { netns: path, input: ipsetSwapRestore(buildIpvsConfig(FIXTURE, opts)) });
    await run(['ipset', 'restore', '-exist'], { netns: path, input: ipsetSwapRestore(buildIpvsConfig(FIXTURE.slice(0, 1), opts)) });
    const listed = await run(['ipset', 'list', 'KUBE-CLUSTER-IP'], { netns: path });
    assert.ok(listed.includes('10.96.0.10,tcp:80'));
    assert.ok(!listed.includes('10.96.0.11'), 'entries of Services that went away are gone');
    assert.ok(!(await run(['ipset', 'list', '-n'], { netns: path })).includes('-TMP'));
  } finally {
    await run(['ip', 'netns', 'del', ns]);
  }
});
