// One contract for the dataplane port, run against the fake always and against the real
// kernel as root: the same operations give the same observable state, and the same
// refusals. Each scenario asserts what it expects on each implementation, then (as root)
// the two implementations' views of the namespaces it built are compared whole.
//
// The Linux run creates its namespaces (kwct<pid>-*) and removes them, even on failure.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';
import { linux } from '../src/dataplane/linux/host.ts';
import { DataplaneError, type Dataplane, type LinkInfo, type Netns, type RouteInfo } from '../src/dataplane/port.ts';
import { closeSync } from 'node:fs';
import { isAlive } from '../src/supervisor/supervisor.ts';
import { NOT_ROOT } from './helpers.ts';

const PREFIX = `kwct${process.pid}-`;

interface Impl {
  name: string;
  dp: Dataplane;
  skip: string | false;
}

const fake = new FakeDataplane();
const impls: Impl[] = [
  { name: 'fake', dp: fake, skip: false },
  { name: 'linux', dp: linux, skip: NOT_ROOT },
];

// Ours, and those of an earlier run that was killed before it could clean up (its pid is gone).
after(async () => {
  for (const name of await linux.listNetns('kwct').catch(() => [])) {
    const pid = Number(/^kwct(\d+)-/.exec(name)?.[1]);
    if (name.startsWith(PREFIX) || (pid && !isAlive(pid))) await linux.deleteNetns(name);
  }
});

/** A view of a namespace both implementations can give alike: links, their state and addresses, IPv4 routes. */
async function view(ns: Netns) {
  const all = await ns.addressing();
  const v = viewOf(await ns.links(), await ns.routes());
  assert.deepEqual(viewOf(all.links, all.routes), v, 'addressing() reads what links() and routes() read');
  assert.deepEqual(all.neighbours, await ns.neighbours(), 'addressing() reads what neighbours() reads');
  return v;
}

function viewOf(linkList: LinkInfo[], routeList: RouteInfo[]) {
  const links = linkList.map((l: LinkInfo) => ({
    name: l.ifname,
    kind: l.linkinfo?.info_kind ?? 'loopback',
    up: l.flags.includes('UP'),
    mtu: l.mtu,
    master: l.master,
    alias: l.ifalias,
    addresses: (l.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).sort(),
  }));
  const routes = routeList.filter((r) => !r.dst.includes(':')).map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev}`).sort();
  return { links: links.sort((a, b) => a.name.localeCompare(b.name)), routes };
}

/** Waits (up to 2 s) for the kernel to bring carrier up; the fake answers at once. */
async function running(ns: Netns, link: string): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    if (await ns.linkRunning(link)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Refused with a DataplaneError of `code` (any code for 'refused': iptables-legacy-restore names no reason, only the line). */
async function rejectsWith(p: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DataplaneError, `${what}: a DataplaneError, got ${String(e)}`);
    if (code !== 'refused') assert.equal(e.code, code, `${what}: ${e.message}`);
    return true;
  });
}

/** Each scenario, on each implementation; as root the views of both are compared. */
function scenario(title: string, body: (dp: Dataplane, names: (n: string) => string) => Promise<Netns[]>): void {
  test(title, async (t) => {
    const views: Record<string, unknown> = {};
    for (const impl of impls) {
      await t.test(impl.name, { skip: impl.skip }, async () => {
        const made: string[] = [];
        const names = (n: string) => {
          made.push(`${PREFIX}${n}`);
          return `${PREFIX}${n}`;
        };
        try {
          const namespaces = await body(impl.dp, names);
          views[impl.name] = await Promise.all(namespaces.map(view));
        } finally {
          for (const n of made) await impl.dp.deleteNetns(n);
        }
      });
    }
    if (views.linux) assert.deepEqual(views.fake, views.linux, 'the fake and the kernel hold the same state');
  });
}

describe('dataplane port contract', () => {
  scenario('a pod on a node: a bridge, a veth pair across namespaces, addresses and routes', async (dp, names) => {
    const node = await dp.createNetns(names('node'));
    const pod = await dp.createNetns(names('pod'));
    const bridge = await node.apply(
      [
        { op: 'link-add', name: 'br0', kind: 'bridge', mac: '02:00:00:00:aa:01' },
        { op: 'link-set', name: 'br0', up: true },
        { op: 'veth-add', name: 'veth0', peer: 'eth0', peerNetns: pod.path, mtu: 1400 },
        { op: 'link-set', name: 'veth0', master: 'br0', alias: 'kubewire-cni net c1 eth0', hairpin: true, up: true },
        { op: 'addr-add', dev: 'br0', address: '10.91.0.1/24' },
      ],
      { show: 'br0', sysctls: { 'net/ipv4/ip_forward': '1' } },
    );
    assert.equal(await node.sysctl('net/ipv4/ip_forward'), '1');
    assert.equal(bridge?.linkinfo?.info_kind, 'bridge');
    assert.deepEqual(bridge?.addr_info?.filter((a) => a.scope === 'global').map((a) => a.local), ['10.91.0.1']);
    await pod.apply([
      { op: 'link-set', name: 'lo', up: true },
      { op: 'addr-add', dev: 'eth0', address: '10.91.0.2/24' },
      { op: 'link-set', name: 'eth0', up: true },
      { op: 'route-add', dst: '0.0.0.0/0', via: '10.91.0.1', dev: 'eth0' },
    ]);
    assert.ok(await running(node, 'veth0'), 'the host end runs once both ends are up');
    assert.ok(await running(node, 'br0'), 'the bridge runs with a running port');
    const [hostEnd, podEnd] = await Promise.all([node.link('veth0'), pod.link('eth0')]);
    assert.equal(hostEnd?.master, 'br0');
    assert.equal(podEnd?.link_index, hostEnd?.ifindex, "the pod end's peer is the host end");
    assert.equal(podEnd?.mtu, 1400);
    assert.deepEqual((await node.links('br0')).map((l) => l.ifname), ['veth0']);
    assert.deepEqual((await pod.routes('eth0')).filter((r) => r.dst === 'default').map((r) => r.gateway), ['10.91.0.1']);
    assert.equal(await pod.link('nothing'), undefined);
    // A static FDB entry on the port, in the same batch as a neighbour entry (two tools, one call).
    await node.apply([
      { op: 'fdb-replace', dev: 'veth0', mac: '02:00:00:00:bb:01' },
      { op: 'neigh-replace', dev: 'br0', ip: '10.91.0.9', mac: '02:00:00:00:bb:01' },
    ]);
    const statics = (await node.fdb('br0')).filter((e) => e.state === 'static').map((e) => `${e.mac} ${e.ifname}`);
    assert.deepEqual(statics, ['02:00:00:00:bb:01 veth0']);
    assert.deepEqual((await node.neighbours('br0')).map((n) => `${n.dst} ${n.lladdr}`), ['10.91.0.9 02:00:00:00:bb:01']);
    assert.deepEqual((await node.addressing()).neighbours.filter((n) => n.dev === 'br0').map((n) => `${n.dst} ${n.lladdr}`), ['10.91.0.9 02:00:00:00:bb:01']);
    await rejectsWith(node.apply([{ op: 'fdb-replace', dev: 'br0', mac: '02:00:00:00:bb:02' }]), 'invalid', 'a bridge entry on a device that is no port');
    await node.apply([{ op: 'fdb-del', dev: 'veth0', mac: '02:00:00:00:bb:01' }]);
    assert.deepEqual((await node.fdb('br0')).filter((e) => e.state === 'static'), []);
    return [node, pod];
  });

  scenario('what the kernel refuses, the fake refuses; a batch stops at its first failure', async (dp, names) => {
    const ns = await dp.createNetns(names('refuse'));
    // (No dummy links: this kernel has none; a veth pair with both ends up has carrier too.)
    await ns.apply([
      { op: 'link-add', name: 'br1', kind: 'bridge' },
      { op: 'veth-add', name: 'v1', peer: 'v1peer' },
      { op: 'link-set', name: 'v1', up: true },
      { op: 'link-set', name: 'v1peer', up: true },
      { op: 'addr-add', dev: 'v1', address: '10.92.0.1/24' },
    ]);
    await rejectsWith(ns.apply([{ op: 'link-add', name: 'br1', kind: 'bridge' }]), 'exists', 'a link that exists');
    await rejectsWith(ns.apply([{ op: 'link-del', name: 'nothing0' }]), 'not-found', 'deleting a missing link');
    await rejectsWith(ns.apply([{ op: 'link-set', name: 'nothing0', up: true }]), 'not-found', 'setting a missing link');
    await rejectsWith(ns.apply([{ op: 'addr-add', dev: 'v1', address: '10.92.0.1/24' }]), 'exists', 'an address twice');
    await rejectsWith(ns.apply([{ op: 'route-add', dst: '10.200.0.0/16', via: '10.93.0.1' }]), 'invalid', 'a gateway no connected route reaches');
    await ns.apply([{ op: 'route-add', dst: '10.200.0.0/16', via: '10.92.0.254' }]);
    await rejectsWith(ns.apply([{ op: 'route-add', dst: '10.200.0.0/16', via: '10.92.0.254' }]), 'exists', 'a route twice');
    await ns.apply([{ op: 'route-add', dst: '10.200.0.0/16', via: '10.92.0.253', replace: true }]);
    await rejectsWith(ns.apply([{ op: 'route-del', dst: '10.201.0.0/16' }]), 'not-found', 'deleting a missing route');
    await rejectsWith(ns.apply([{ op: 'addr-del', dev: 'v1', address: '10.92.0.9/24' }]), 'not-found', 'deleting a missing address');
    // First two ops go in, the third fails, the fourth never runs.
    await rejectsWith(
      ns.apply([
        { op: 'link-add', name: 'br2', kind: 'bridge' },
        { op: 'link-set', name: 'br2', up: true },
        { op: 'link-add', name: 'br1', kind: 'bridge' },
        { op: 'link-add', name: 'br3', kind: 'bridge' },
      ]),
      'exists',
      'a batch with a failing op',
    );
    assert.ok(await ns.link('br2'), 'ops before the failure stay');
    assert.equal(await ns.link('br3'), undefined, 'ops after it never ran');
    // A master that is not a bridge is refused, after the alias went in (what lets the bridge plugin find and undo its veth).
    await rejectsWith(ns.apply([{ op: 'veth-add', name: 'v2', peer: 'v2peer' }, { op: 'link-set', name: 'v2', master: 'v1', alias: 'mine', up: true }]), 'invalid', 'a master that is not a bridge');
    const v2 = await ns.link('v2');
    assert.equal(v2?.ifalias, 'mine');
    assert.equal(v2?.master, undefined);
    assert.ok(!v2?.flags.includes('UP'), 'the rest of the op did not run');
    return [ns];
  });

  scenario('a namespace removed takes its veth ends, and their peers elsewhere', async (dp, names) => {
    const a = await dp.createNetns(names('a'));
    const bName = names('b');
    const b = await dp.createNetns(bName);
    await a.apply([{ op: 'veth-add', name: 'to-b', peer: 'to-a', peerNetns: b.path }]);
    assert.ok(await b.link('to-a'));
    await rejectsWith(dp.createNetns(bName), 'exists', 'a namespace twice');
    assert.deepEqual(await dp.listNetns(`${PREFIX}b`), [bName]);
    assert.equal(dp.netnsState(b.path!), 'ok');
    await dp.deleteNetns(bName);
    await dp.deleteNetns(bName); // a missing one is no error
    assert.equal(dp.netnsState(b.path!), 'missing');
    await rejectsWith(b.link('to-a'), 'not-found', 'a handle on a removed namespace');
    // The kernel tears a namespace down in the background: its veths' peers go a moment later.
    let peer = await a.link('to-b');
    for (let i = 0; i < 40 && peer; i++) {
      await new Promise((r) => setTimeout(r, 50));
      peer = await a.link('to-b');
    }
    assert.equal(peer, undefined, 'the peer went with it');
    return [a];
  });

  scenario('sysctls: set where they exist, skipped where they do not', async (dp, names) => {
    const ns = await dp.createNetns(names('sysctl'));
    await ns.apply([{ op: 'link-add', name: 'br4', kind: 'bridge' }]);
    await ns.setSysctls({ 'net/ipv4/ip_forward': '1', 'net/ipv4/conf/br4/rp_filter': '2', 'net/ipv4/conf/nothing9/rp_filter': '2' });
    assert.equal(await ns.sysctl('net/ipv4/ip_forward'), '1');
    assert.equal(await ns.sysctl('net/ipv4/conf/br4/rp_filter'), '2');
    assert.equal(await ns.sysctl('net/ipv4/conf/nothing9/rp_filter'), undefined);
    return [ns];
  });

  scenario('iptables: whole transactions, jumps to missing chains and deleting referenced chains refused', async (dp, names) => {
    const ns = await dp.createNetns(names('ipt'));
    const base = ['*nat', ':KW-SERVICES - [0:0]', ':KW-SVC-A - [0:0]', '-A PREROUTING -m comment --comment "kw portals" -j KW-SERVICES', '-A KW-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j KW-SVC-A', '-A KW-SVC-A -p tcp -m tcp -j DNAT --to-destination 10.91.0.2:8080', 'COMMIT', ''].join('\n');
    await ns.iptablesRestore(base, 4, 'legacy');
    const rules = (await ns.iptablesSave('nat', 4, 'legacy')).split('\n').filter((l) => l.startsWith('-A'));
    assert.deepEqual(rules, ['-A PREROUTING -m comment --comment "kw portals" -j KW-SERVICES', '-A KW-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j KW-SVC-A', '-A KW-SVC-A -p tcp -m tcp -j DNAT --to-destination 10.91.0.2:8080']);
    assert.equal(await ns.iptablesHasRule('nat', 'PREROUTING', ['-m', 'comment', '--comment', 'kw portals', '-j', 'KW-SERVICES'], 4, 'legacy'), true);
    assert.equal(await ns.iptablesHasRule('nat', 'PREROUTING', ['-j', 'KW-SVC-A'], 4, 'legacy'), false);
    await rejectsWith(ns.iptablesRestore('*nat\n:KW-SERVICES - [0:0]\n-A KW-SERVICES -j KW-SVC-MISSING\nCOMMIT\n', 4, 'legacy'), 'refused', 'a jump to a missing chain');
    await rejectsWith(ns.iptablesRestore('*nat\n-X KW-SVC-A\nCOMMIT\n', 4, 'legacy'), 'refused', 'deleting a referenced chain');
    const after = (await ns.iptablesSave('nat', 4, 'legacy')).split('\n').filter((l) => l.startsWith('-A'));
    assert.deepEqual(after, rules, 'a refused transaction changed nothing');
    // --noflush: a declared chain is flushed and refilled, the others stay.
    await ns.iptablesRestore('*nat\n:KW-SERVICES - [0:0]\n-A KW-SERVICES -d 10.96.0.2/32 -p tcp -m tcp --dport 80 -j KW-SVC-A\nCOMMIT\n', 4, 'legacy');
    const third = (await ns.iptablesSave('nat', 4, 'legacy')).split('\n').filter((l) => l.startsWith('-A KW-'));
    assert.deepEqual(third, ['-A KW-SERVICES -d 10.96.0.2/32 -p tcp -m tcp --dport 80 -j KW-SVC-A', '-A KW-SVC-A -p tcp -m tcp -j DNAT --to-destination 10.91.0.2:8080']);
    return [ns];
  });

  scenario('nftables: one transaction; a jump to a missing chain, a referenced chain deleted, a missing element deleted: refused', async (dp, names) => {
    const ns = await dp.createNetns(names('nft'));
    const table = `table ip kwtest {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { 10.96.0.1 . tcp . 80 : goto svc-a }
  }
  chain nat-prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr . meta l4proto . th dport vmap @service-ips
  }
  chain svc-a {
    meta l4proto tcp dnat ip to 10.91.0.2:8080
  }
}
`;
    await ns.nft(`add table ip kwtest\ndelete table ip kwtest\n${table}`);
    assert.ok((await ns.nftTables()).includes('kwtest'));
    const chains = (text: string | undefined) => [...(text ?? '').matchAll(/^\s*chain (\S+) \{/gm)].map((m) => m[1]).sort();
    assert.deepEqual(chains(await ns.nftTable('kwtest')), ['nat-prerouting', 'svc-a']);
    await rejectsWith(ns.nft('add chain ip kwtest svc-b\nadd rule ip kwtest svc-b goto svc-missing\n'), 'not-found', 'a goto to a missing chain');
    assert.deepEqual(chains(await ns.nftTable('kwtest')), ['nat-prerouting', 'svc-a'], 'the refused transaction added nothing (svc-b neither)');
    await rejectsWith(ns.nft('flush chain ip kwtest svc-a\ndelete chain ip kwtest svc-a\n'), 'busy', 'deleting a chain a map element goes to');
    await rejectsWith(ns.nft('delete element ip kwtest service-ips { 10.96.0.9 . tcp . 80 }\n'), 'not-found', 'deleting a missing element');
    await ns.nft('add chain ip kwtest svc-b\nadd rule ip kwtest svc-b meta l4proto tcp dnat ip to 10.91.0.3:8080\nadd element ip kwtest service-ips { 10.96.0.2 . tcp . 80 : goto svc-b }\n');
    const listed = await ns.nftTable('kwtest');
    assert.deepEqual(chains(listed), ['nat-prerouting', 'svc-a', 'svc-b']);
    assert.match(listed!, /10\.96\.0\.2 \. tcp \. 80 : goto svc-b/);
    assert.equal(await ns.nftTable('nothing'), undefined);
    return [ns];
  });
  scenario('netfilter read back typed: iptables rules with their comments, targets and counters; nft chains with hooks, rules, sets and maps', async (dp, names) => {
    const ns = await dp.createNetns(names('nf'));
    await ns.iptablesRestore('*nat\n:KWOBS-SVC - [0:0]\n-A PREROUTING -d 10.96.0.1/32 -p tcp -m comment --comment "ns/a cluster IP" -m tcp --dport 80 -j KWOBS-SVC\n-A KWOBS-SVC -p tcp -m tcp -j DNAT --to-destination 10.91.0.2:8080\nCOMMIT\n', 4, 'legacy');
    const [nat, ...others] = await ns.iptablesRules(['nat'], 4, 'legacy');
    assert.equal(others.length, 0, 'only the table asked for');
    assert.equal(nat?.table, 'nat');
    const pre = nat!.chains.find((c) => c.name === 'PREROUTING')!;
    assert.equal(pre.policy, 'ACCEPT');
    assert.equal(nat!.chains.find((c) => c.name === 'KWOBS-SVC')?.policy, undefined, 'a user chain has no policy');
    assert.deepEqual(pre.rules.map((r) => ({ target: r.target, comment: r.comment, packets: r.packets, bytes: r.bytes })), [{ target: 'KWOBS-SVC', comment: 'ns/a cluster IP', packets: 0, bytes: 0 }]);
    assert.match(pre.rules[0]!.text, /^-A PREROUTING -d 10\.96\.0\.1\/32 .*-j KWOBS-SVC$/);
    assert.equal(nat!.chains.find((c) => c.name === 'KWOBS-SVC')?.rules[0]?.target, 'DNAT');
    await ns.iptablesRestore('*filter\n:KWOBS-FW - [0:0]\nCOMMIT\n', 4, 'legacy');
    assert.deepEqual((await ns.iptablesRules(['nat', 'raw', 'filter'], 4, 'legacy')).map((t) => t.table), ['nat', 'filter'], 'the tables that exist, in the order asked');

    await ns.nft(
      'table ip kwobs {\n  set allowed { type ipv4_addr; elements = { 10.91.0.1, 10.91.0.2 }; }\n  map vips { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.96.0.1 . tcp . 80 : goto svc }; }\n' +
        '  chain svc { meta l4proto tcp dnat ip to 10.91.0.2:8080 comment "ns/a"; }\n  chain pre { type nat hook prerouting priority dstnat - 10; policy accept; ip daddr 10.96.0.1 counter jump svc; }\n}\n',
    );
    const t = await ns.nftTableState('kwobs', 'ip');
    assert.ok(t, 'the table is read');
    assert.deepEqual(t.chains.map((c) => ({ name: c.name, hook: c.hook, priority: c.priority, policy: c.policy })).sort((a, b) => a.name.localeCompare(b.name)), [
      { name: 'pre', hook: 'prerouting', priority: -110, policy: 'accept' },
      { name: 'svc', hook: undefined, priority: undefined, policy: undefined },
    ]);
    const jump = t.chains.find((c) => c.name === 'pre')!.rules[0]!;
    assert.equal(jump.text, 'ip daddr 10.96.0.1 counter jump svc', 'the rule as listed, its counter without values');
    assert.equal(jump.packets ?? 0, 0);
    if (dp !== fake) assert.ok(Number.isInteger(jump.handle), 'the kernel numbers its rules');
    assert.equal(t.chains.find((c) => c.name === 'svc')!.rules[0]!.comment, 'ns/a');
    assert.deepEqual(t.sets.map((x) => ({ name: x.name, kind: x.kind, elements: x.elements })).sort((a, b) => a.name.localeCompare(b.name)), [
      { name: 'allowed', kind: 'set', elements: ['10.91.0.1', '10.91.0.2'] },
      { name: 'vips', kind: 'map', elements: ['10.96.0.1 . tcp . 80 : goto svc'] },
    ]);
    assert.deepEqual((await ns.nftRuleset()).map((x) => `${x.family} ${x.name}`), ['ip kwobs']);
    assert.equal(await ns.nftTableState('nothing', 'ip'), undefined);
    return [ns];
  });

  scenario('conntrack entries listed and deleted by mark; listening sockets; the route the kernel picks; trace events read', async (dp, names) => {
    const ns = await dp.createNetns(names('obs'));
    await ns.apply([
      { op: 'link-set', name: 'lo', up: true },
      { op: 'link-add', name: 'br0', kind: 'bridge' },
      { op: 'link-set', name: 'br0', up: true },
      { op: 'addr-add', dev: 'br0', address: '10.93.0.1/24' },
    ]);
    // A datagram from port 40001, its connection marked; the fake is told what the kernel would keep.
    const mark = '0x6b770001';
    const watch = await ns.traceEvents('nft');
    await ns.nft(`table ip kwobs {\n  chain out { type filter hook output priority -350; policy accept; udp sport 40001 meta nftrace set 1; }\n  chain post { type filter hook postrouting priority 350; policy accept; udp sport 40001 ct mark set ${mark}; }\n}\n`);
    await watch.until('add table ip kwobs', 10_000);
    if (dp === fake) {
      fake.at(ns.path).addConntrack({ protocol: 'udp', timeout: 29, original: { src: '127.0.0.1', dst: '127.0.0.1', sport: 40001, dport: 9 }, reply: { src: '127.0.0.1', dst: '127.0.0.1', sport: 9, dport: 40001 }, flags: ['UNREPLIED'], mark: 0x6b770001 });
      fake.at(ns.path).emitTrace('nft', [{ source: 'nft', packetKey: '1', table: 'kwobs', chain: 'out', type: 'packet', packet: { saddr: '127.0.0.1', daddr: '127.0.0.1', protocol: 'udp', sport: 40001, dport: 9 } }]);
    } else await ns.exec(['nc', '-u', '-n', '-q', '0', '-p', '40001', '127.0.0.1', '9'], 'x\n');
    await ns.nft('add chain ip kwobs barrier\n');
    await watch.until('add chain ip kwobs barrier', 10_000);
    const events = await watch.stop();
    assert.ok(events.some((e) => e.source === 'nft' && e.table === 'kwobs' && e.type === 'packet' && e.packet?.sport === 40001 && e.packet.dport === 9), `the datagram's trace: ${JSON.stringify(events.slice(0, 3))}`);
    const flows = await ns.conntrackList({ mark });
    assert.equal(flows.length, 1, JSON.stringify(flows));
    assert.deepEqual({ protocol: flows[0]!.protocol, original: flows[0]!.original, mark: flows[0]!.mark }, { protocol: 'udp', original: { src: '127.0.0.1', dst: '127.0.0.1', sport: 40001, dport: 9 }, mark: 0x6b770001 });
    assert.deepEqual(await ns.conntrackList({ mark: '0x6b770002' }), []);
    assert.equal(await ns.conntrackDelete({ mark }), 1);
    assert.deepEqual(await ns.conntrackList({ mark }), []);
    assert.equal(await ns.conntrackDelete({ mark }), 0, 'nothing left to delete');

    if (dp === fake) fake.at(ns.path).addListener('tcp', 8089, { local: '*:8089', processes: [{ name: 'node', pid: process.pid }] });
    const fd = dp === fake ? undefined : ns.listen('tcp', 8089, 4);
    try {
      const [socket, ...more] = await ns.listeners('tcp', 8089);
      assert.equal(more.length, 0);
      assert.match(socket?.local ?? '', /:8089$/);
      assert.deepEqual(socket?.processes.map((p) => p.pid), [process.pid]);
      assert.deepEqual(await ns.listeners('udp', 8089), []);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }

    assert.deepEqual(await ns.routeGet('10.93.0.7'), { ...(await ns.routeGet('10.93.0.7')), dst: '10.93.0.0/24', dev: 'br0' });
    await rejectsWith(ns.routeGet('10.94.0.7'), 'refused', 'a destination no route holds');
    await assert.rejects(ns.routeGet('10.94.0.7'), /^DataplaneError: Network is unreachable$/);
    return [ns];
  });
});
