// Without root: the NetworkPolicy backends' transactions on the fake dataplane (which refuses
// what the kernel refuses: a jump to a missing chain, a set in use destroyed...), and the
// per-node enforcer end to end against an in-process API: informers in, a table per sync,
// pods isolated before they start, nothing left after the last policy, a flushed table restored.
//
// Address plan: pods 10.244.1.0/24 (node n1) and 10.244.2.0/24 (node n2); off-cluster 203.0.113.0/24.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Pod } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import { Store } from '../src/apiserver/store.ts';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';
import { PolicyEnforcer } from '../src/netpol/enforcer.ts';
import { headRepairs, IptablesPolicyBackend, renderIptables, TOP } from '../src/netpol/iptables.ts';
import { compileNode, type NetworkPolicyObject, type PolicyWorld } from '../src/netpol/model.ts';
import { NFT_TABLE, NftablesPolicyBackend, renderNftables } from '../src/netpol/nftables.ts';
import { KernelPolicyBackend } from '../src/netpol/node.ts';

const scratch = mkdtempSync(join(tmpdir(), 'kwt-netpol-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const policy = (ns: string, name: string, spec: NetworkPolicyObject['spec']): NetworkPolicyObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec });

const podInfo = (ns: string, name: string, ip: string, node: string) => ({ namespace: ns, name, labels: { pod: name }, ip, node, ports: [{ name: 'http', containerPort: 8080 }] });

function sampleWorld(): PolicyWorld {
  return {
    pods: [podInfo('x', 'a', '10.244.1.10', 'n1'), podInfo('x', 'b', '10.244.2.11', 'n2'), podInfo('y', 'a', '10.244.1.20', 'n1')],
    namespaces: new Map([['x', {}], ['y', {}]]),
    policies: [
      policy('x', 'web', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }], ports: [{ port: 'http' }, { protocol: 'UDP', port: 53, endPort: 54 }] }], egress: [{ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }] }] }),
    ],
  };
}

/** A table listing in an order-free form: its blocks sorted, each map's or set's elements sorted. */
function canonical(list: string): string {
  const sorted = list.replace(/elements = \{([^}]*)\}/g, (_m, els: string) => `elements = { ${els.split(',').map((e) => e.trim()).sort().join(', ')} }`);
  return sorted.split(/\n(?=\t(?:chain|set|map) )/).map((b) => b.replace(/\n\}\n?$/, '')).sort().join('\n');
}

describe('nftables backend', () => {
  it('renders one inet table the fake kernel accepts, and removes it whole', async () => {
    const { script, counts } = renderNftables(compileNode(sampleWorld(), 'n1'));
    assert.match(script, /^add table inet kubewire-netpol\ndelete table inet kubewire-netpol\ntable inet kubewire-netpol \{/);
    assert.match(script, /chain ingress-x\/a \{\n\t\tip saddr @peers-\S+ meta l4proto tcp th dport 8080 return comment "x\/web ingress rule 0"\n\t\tip saddr @peers-\S+ meta l4proto udp th dport 53-54 return comment "x\/web ingress rule 0"\n\t\tcounter drop comment "x\/a isolated for ingress by \[x\/web\]: no rule allows"/);
    assert.match(script, /elements = \{ 10\.244\.1\.10, 10\.244\.2\.11, 203\.0\.113\.0-203\.0\.113\.127 \}/, 'pod IPs and the ipBlock less its except, in one interval set');
    assert.match(script, /elements = \{ 10\.244\.1\.20 \}/, 'egress to namespace y: its pod');
    assert.match(script, /ip saddr vmap @egress\n\t\tip daddr vmap @ingress/);
    assert.deepEqual(counts, { pods: 1, chains: 2, rules: 3, sets: 2 });
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-nft');
    const backend = new NftablesPolicyBackend(ns);
    await backend.apply(compileNode(sampleWorld(), 'n1'));
    await backend.apply(compileNode(sampleWorld(), 'n1')); // again: the delete-and-recreate transaction
    assert.ok(await backend.intact());
    assert.match((await ns.nftTable(NFT_TABLE, 'inet'))!, /chain egress-x\/a/);
    assert.deepEqual(await ns.nftTables('ip'), [], 'nothing in the ip family');
    await backend.remove();
    assert.deepEqual(await ns.nftTables('inet'), []);
    assert.equal(await backend.intact(), false);
  });

  it('a change goes in as its difference (new sets and chains, changed chains refilled, map elements, the unused removed), equal to the whole table of the new view', async () => {
    const before = sampleWorld();
    before.pods.push({ ...podInfo('x', 'gone', '10.244.1.40', 'n1'), labels: { pod: 'a' } }); // isolated by x/web, then deleted
    const after = sampleWorld();
    after.pods[2]!.labels = { pod: 'a', team: 'red' }; // y/a: a label change, peers unchanged
    after.pods.push(podInfo('x', 'new', '10.244.1.41', 'n1'));
    after.policies.push(policy('x', 'red', { podSelector: { matchLabels: { pod: 'new' } }, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { team: 'red' } } }] }] }));
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-nft-diff');
    const backend = new NftablesPolicyBackend(ns);
    const first = await backend.apply(compileNode(before, 'n1'));
    assert.equal(first.partial, 0);
    assert.match(backend.lastScript, /^add table inet/, 'the first sync is whole');
    const second = await backend.apply(compileNode(after, 'n1'));
    assert.equal(second.partial, 1);
    const diff = backend.lastScript;
    assert.doesNotMatch(diff, /table inet kubewire-netpol \{|egress-x\/a/, `only what changed (x/a's egress peers did not):\n${diff}`);
    assert.match(diff, /^add chain inet kubewire-netpol ingress-x\/new$/m);
    assert.match(diff, /^delete element inet kubewire-netpol ingress \{ 10\.244\.1\.40 \}$/m);
    assert.match(diff, /^flush chain inet kubewire-netpol ingress-x\/gone\ndelete chain inet kubewire-netpol ingress-x\/gone$/m);
    const whole = await dp.createNetns('netpol-nft-whole');
    await new NftablesPolicyBackend(whole).apply(compileNode(after, 'n1'));
    assert.equal(canonical((await ns.nftTable(NFT_TABLE, 'inet'))!), canonical((await whole.nftTable(NFT_TABLE, 'inet'))!));
    await backend.apply(compileNode(after, 'n1'));
    assert.equal(backend.lastScript, '', 'nothing changed: no transaction');
    // Lost (flushed by hand): the check says so and the next sync is whole again.
    await ns.nft(`delete table inet ${NFT_TABLE}\n`);
    assert.equal(await backend.intact(), false);
    await backend.apply(compileNode(after, 'n1'));
    assert.match(backend.lastScript, /^add table inet/);
  });

  it('long comments are cut to what nft keeps (128 bytes)', () => {
    const many = Array.from({ length: 30 }, (_, i) => policy('x', `deny-${i}`, { podSelector: {} }));
    const { script } = renderNftables(compileNode({ ...sampleWorld(), policies: many }, 'n1'));
    const comments = [...script.matchAll(/comment "([^"]*)"/g)].map((m) => m[1]!);
    assert.ok(comments.some((c) => c.endsWith('...')), 'the drop comment naming 30 policies is cut');
    for (const c of comments) assert.ok(Buffer.byteLength(c) <= 128, c);
  });
});

describe('iptables + ipset backend', () => {
  it('head jumps, pod chains, content-named sets; a change drops stale chains and sets; removal leaves nothing', async () => {
    const r = renderIptables(compileNode(sampleWorld(), 'n1'));
    assert.match(r.filter, /-A KUBEWIRE-NETPOL -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN/);
    assert.match(r.filter, /-A KWNP-IN-\S+ -m set --match-set KWNP-\S+ src -p tcp -m tcp --dport 8080 -m comment --comment "x\/web ingress rule 0" -j RETURN/);
    assert.match(r.filter, /-A KWNP-IN-\S+ -m comment --comment "x\/a isolated for ingress by \[x\/web\]: no rule allows" -j DROP/);
    assert.match(r.ipsets, /add KWNP-\S+ 203\.0\.113\.0-203\.0\.113\.127 -exist/);
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-ipt');
    // A proxy's jump already at the head of FORWARD: ours goes before it.
    await ns.iptablesRestore('*filter\n:KUBE-FORWARD - [0:0]\n-A FORWARD -j KUBE-FORWARD\nCOMMIT\n');
    const backend = new IptablesPolicyBackend(ns);
    await backend.apply(compileNode(sampleWorld(), 'n1'));
    let save = await ns.iptablesSave('filter');
    assert.match(save, /-A FORWARD -m comment --comment "kubewire netpol" -j KUBEWIRE-NETPOL\n-A FORWARD -j KUBE-FORWARD/);
    assert.ok(await backend.intact());
    assert.equal((await ns.ipsetNames()).length, 2);
    // The proxy re-inserts its jump at the head: not intact; the next apply repairs the order.
    await ns.iptablesRestore('*filter\n-I FORWARD 1 -j KUBE-FORWARD\nCOMMIT\n');
    assert.equal(await backend.intact(), false);
    assert.ok(headRepairs(await ns.iptablesSave('filter')).length > 0);
    // Only egress left: the ingress chain and its sets go.
    const w = sampleWorld();
    w.policies = [policy('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] })];
    await backend.apply(compileNode(w, 'n1'));
    save = await ns.iptablesSave('filter');
    assert.doesNotMatch(save, /KWNP-IN-/);
    assert.match(save, /^-A FORWARD -m comment --comment "kubewire netpol" -j KUBEWIRE-NETPOL$/m);
    assert.equal(save.match(/-A FORWARD .*KUBEWIRE-NETPOL/g)?.length, 1, 'one jump, not two');
    assert.deepEqual(await ns.ipsetNames(), []);
    await backend.remove();
    save = await ns.iptablesSave('filter');
    assert.doesNotMatch(save, new RegExp(`${TOP}|KWNP-`));
    assert.match(save, /-A FORWARD -j KUBE-FORWARD/, "the proxy's rules stay");
  });
});

describe('iptables + ipset backend, later syncs', () => {
  it('restores only the chains that changed, makes and destroys only the sets that came and went, and ends where a whole sync of the new view does', async () => {
    const before = sampleWorld();
    before.pods.push({ ...podInfo('x', 'gone', '10.244.1.40', 'n1'), labels: { pod: 'a' } });
    const after = sampleWorld();
    after.pods.push({ ...podInfo('x', 'new', '10.244.1.41', 'n1'), labels: { pod: 'a' } });
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-ipt-diff');
    const restores: string[] = [];
    const spy = new Proxy(ns, { get: (t, k) => (k === 'iptablesRestore' ? (script: string, ...rest: []) => (restores.push(script), t.iptablesRestore(script, ...rest)) : Reflect.get(t, k)) }) as typeof ns;
    const backend = new IptablesPolicyBackend(spy);
    assert.equal((await backend.apply(compileNode(before, 'n1'))).partial, 0);
    assert.equal((await backend.apply(compileNode(after, 'n1'))).partial, 1);
    const diff = restores.at(-1)!;
    assert.match(diff, /^:KUBEWIRE-NETPOL - \[0:0\]$/m, 'the top chain: a pod came and one went');
    const egressOfA = /-A KUBEWIRE-NETPOL -s 10\.244\.1\.10\/32 -j (KWNP-EG-\S+)/.exec(restores[0]!)![1]!;
    assert.ok(!diff.includes(`:${egressOfA} `), "x/a's egress chain (to namespace y) did not change: not restored");
    assert.match(diff, /^-X KWNP-IN-\S+$/m, "x/gone's chain deleted");
    const n = restores.length;
    await backend.apply(compileNode(after, 'n1'));
    assert.equal(restores.length, n, 'nothing changed: no restore');
    const whole = await dp.createNetns('netpol-ipt-whole');
    await new IptablesPolicyBackend(whole).apply(compileNode(after, 'n1'));
    const ours = async (x: typeof ns) => (await x.iptablesSave('filter')).split('\n').filter((l) => /KWNP-|KUBEWIRE-NETPOL/.test(l)).sort();
    assert.deepEqual(await ours(ns), await ours(whole));
    assert.deepEqual((await ns.ipsetNames()).sort(), (await whole.ipsetNames()).sort());
  });
});

describe('IPVS proxy mode', () => {
  // IPVS DNATs in LOCAL_IN and sends a Service's packets on through OUTPUT: a pod's Service
  // connection never meets FORWARD, and INPUT sees it before IPVS, on the ClusterIP.
  it('nftables: input after IPVS (priority 101), an output chain judging both ends, the node\'s own packets passing', async () => {
    const plain = renderNftables(compileNode(sampleWorld(), 'n1')).script;
    assert.doesNotMatch(plain, /hook output/, 'no output chain without IPVS');
    const { script } = renderNftables(compileNode(sampleWorld(), 'n1'), { ipvs: true });
    assert.match(script, /chain input \{\n\t\ttype filter hook input priority filter \+ 101;/);
    assert.match(script, /chain output \{\n\t\ttype filter hook output priority filter - 10; policy accept;\n\t\tct state established,related accept\n\t\tfib saddr type local accept\n\t\tip saddr vmap @egress\n\t\tip daddr vmap @ingress\n/);
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-nft-ipvs');
    const backend = new NftablesPolicyBackend(ns, { ipvs: true });
    await backend.apply(compileNode(sampleWorld(), 'n1'));
    assert.match((await ns.nftTable(NFT_TABLE, 'inet'))!, /hook output/);
    await backend.remove();
    assert.deepEqual(await ns.nftTables('inet'), []);
  });

  it('iptables: INPUT leaves ClusterIPs and NodePorts to IPVS, OUTPUT (kept first) judges what IPVS sends on; removal takes the OUTPUT jump too', async () => {
    const proxy = { ipvs: true, serviceCIDR: '10.96.0.0/12' };
    const r = renderIptables(compileNode(sampleWorld(), 'n1'), proxy);
    const input = r.filter.split('\n').filter((l) => l.startsWith('-A KUBEWIRE-NETPOL-INPUT '));
    assert.match(input[1]!, /^-A KUBEWIRE-NETPOL-INPUT -d 10\.96\.0\.0\/12 .*-j RETURN$/, 'ClusterIPs before any pod\'s egress chain');
    assert.match(input[2]!, /^-A KUBEWIRE-NETPOL-INPUT -p tcp -m tcp --dport 30000:32767 .*-j RETURN$/);
    assert.match(input.at(-1)!, /-s 10\.244\.1\.10\/32 -j KWNP-EG-/);
    assert.match(r.filter, /-A KUBEWIRE-NETPOL-OUTPUT -m addrtype --src-type LOCAL .*-j RETURN\n-A KUBEWIRE-NETPOL-OUTPUT -j KUBEWIRE-NETPOL\n/);
    assert.doesNotMatch(renderIptables(compileNode(sampleWorld(), 'n1')).filter, /KUBEWIRE-NETPOL-OUTPUT|30000/, 'none of it without IPVS');
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-ipt-ipvs');
    await ns.iptablesRestore('*filter\n:KUBE-FIREWALL - [0:0]\n-A OUTPUT -j KUBE-FIREWALL\nCOMMIT\n');
    const backend = new IptablesPolicyBackend(ns, undefined, proxy);
    await backend.apply(compileNode(sampleWorld(), 'n1'));
    assert.match(await ns.iptablesSave('filter'), /-A OUTPUT -m comment --comment "kubewire netpol" -j KUBEWIRE-NETPOL-OUTPUT\n-A OUTPUT -j KUBE-FIREWALL/);
    assert.ok(await backend.intact());
    await backend.remove();
    const save = await ns.iptablesSave('filter');
    assert.doesNotMatch(save, /KUBEWIRE-NETPOL|KWNP-/);
    assert.match(save, /-A OUTPUT -j KUBE-FIREWALL/);
  });
});

describe('the node\'s choice of backend', () => {
  it('nftables where the kernel answers for inet, iptables + ipset when forced (or without nf_tables)', async () => {
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-choice');
    const auto = new KernelPolicyBackend(ns, undefined);
    await auto.apply(compileNode(sampleWorld(), 'n1'));
    assert.equal(auto.name, 'nftables');
    assert.deepEqual(await ns.nftTables('inet'), [NFT_TABLE]);
    const forced = new KernelPolicyBackend(ns, undefined, 'iptables');
    await forced.apply(compileNode(sampleWorld(), 'n1'));
    assert.equal(forced.name, 'iptables');
    assert.match(await ns.iptablesSave('filter'), /-A FORWARD -m comment --comment "kubewire netpol" -j KUBEWIRE-NETPOL/);
    await auto.remove();
    await forced.remove();
    assert.deepEqual(await ns.nftTables('inet'), []);
  });

  it("iptables + ipset where the kernel lists inet tables but makes none (user-mode Linux's: Operation not supported)", async () => {
    const dp = new FakeDataplane();
    const real = await dp.createNetns('netpol-uml');
    const uml = new Proxy(real, {
      get: (t, k) => (k === 'nft' ? () => Promise.reject(new Error('Error: Could not process rule: Operation not supported')) : Reflect.get(t, k)),
    }) as typeof real;
    assert.deepEqual(await uml.nftTables('inet'), [], 'it lists');
    const auto = new KernelPolicyBackend(uml, undefined);
    await auto.apply(compileNode(sampleWorld(), 'n1'));
    assert.equal(auto.name, 'iptables');
    assert.match(await real.iptablesSave('filter'), /-j KUBEWIRE-NETPOL/);
    await auto.remove();
  });
});

describe('enforcer against an in-process API', () => {
  const pod = (ns: string, name: string, ip: string | undefined, labels: Record<string, string> = { pod: name }): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: ns, name, labels },
    spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'x' }] },
    ...(ip ? { status: { phase: 'Running', podIP: ip } } : {}),
  });

  /** Creates the pod with its address (the API server takes no status on create). */
  const put = (api: Api, p: Pod): Pod => {
    const made = api.create({ ...p, status: undefined }) as Pod;
    return p.status ? (api.updateStatus({ kind: 'Pod', namespace: made.metadata.namespace, name: made.metadata.name }, p.status) as Pod) : made;
  };

  it('syncs on changes, isolates a starting pod before it runs, removes the table with the last policy, restores a flushed one', async () => {
    const api = new Api(new Store(join(scratch, 'enforcer.db')));
    for (const n of ['x', 'y']) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } });
    put(api, pod('x', 'a', '10.244.1.10'));
    put(api, pod('y', 'b', '10.244.1.11'));
    const dp = new FakeDataplane();
    const ns = await dp.createNetns('netpol-enforcer');
    const backend = new NftablesPolicyBackend(ns);
    const enforcer = new PolicyEnforcer({ client: new LocalClient(api), nodeName: 'n1', backend, log: () => undefined, minSyncMs: 10, checkMs: 50 });
    const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
      const end = Date.now() + 3000;
      while (!(await ok())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      await enforcer.start();
      await until('the first sync', () => enforcer.syncs === 1);
      assert.deepEqual(await ns.nftTables('inet'), [], 'no policy: no table');
      api.create(policy('x', 'from-y', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] }));
      await until('the policy in the kernel', async () => (await ns.nftTables('inet')).includes(NFT_TABLE));
      assert.match(backend.lastScript, /10\.244\.1\.10 : jump ingress-x\/a/);
      assert.doesNotMatch(backend.lastScript, /set peers-/, 'no namespace is labelled team=blue yet');
      // A namespace label change reaches the rules.
      const y = api.get({ kind: 'Namespace', name: 'y' });
      api.update({ ...y, metadata: { ...y.metadata, labels: { team: 'blue' } } });
      await until('y/b admitted', () => /elements = \{ 10\.244\.1\.11 \}/.test(backend.lastScript));
      // A pod of x starting: the agent's hook returns only once its address is in the ingress map.
      const started = api.create(pod('x', 'new', undefined));
      await enforcer.podStarting(started as Pod, '10.244.1.30');
      assert.match(backend.lastScript, /10\.244\.1\.30 : jump ingress-x\/new/);
      // A pod of a namespace without policies does not wait.
      const t0 = Date.now();
      await enforcer.podStarting(api.create(pod('y', 'other', undefined)) as Pod, '10.244.1.31');
      assert.ok(Date.now() - t0 < 50);
      // Flushed behind our back: restored at the next check.
      await ns.nft(`delete table inet ${NFT_TABLE}\n`);
      await until('the table restored', async () => (await ns.nftTables('inet')).includes(NFT_TABLE));
      api.delete({ kind: 'NetworkPolicy', namespace: 'x', name: 'from-y' });
      await until('the table gone', async () => !(await ns.nftTables('inet')).includes(NFT_TABLE));
    } finally {
      await enforcer.stop();
    }
  });
});
