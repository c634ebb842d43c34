// `kubewire trace` end to end (root): real probes in a 3-node cluster, each path of the seed
// traced as a user runs it (the CLI, -o json), the cluster broken in the ways people break it,
// a randomized differential run (the trace's verdict against the probe's real fate), and
// the same in nftables mode. Every trace must leave no rule, conntrack entry or process.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Ingress, Pod, Service } from '../src/api/types.ts';
import { loadCluster } from '../src/cluster/cluster.ts';
import { linux } from '../src/dataplane/linux/host.ts';
import { TRACE_CT_MARK, TRACE_CT_MASK, TRACE_TABLE, type ProbeSpec } from '../src/trace/observe.ts';
import type { Trace } from '../src/trace/types.ts';
import { infrastructure, parseTraceRequest, podPlace, traceMany, traceOne, type ClusterView } from '../src/trace/trace.ts';
import { NOT_ROOT } from './helpers.ts';
import { makeCa, makeLeaf, tlsSecretYaml } from './certificates.ts';
import { echoPod, Kube, waitFor, webApp } from './kube.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');

/** The cluster of these tests: web (3 replicas, NodePort), client and neighbour on node 1, far on node 2, and Services over them. */
const manifest = (node1: string, node2: string, stateDir: string) => `${webApp({ replicas: 3, serviceType: 'NodePort' })}---
${echoPod('client', { node: node1 })}---
${echoPod('neighbour', { node: node1, labels: { app: 'solo' } })}---
${echoPod('far', { node: node2, labels: { app: 'local' } })}---
apiVersion: v1
kind: Service
metadata: {name: solo}
spec:
  selector: {app: solo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: local}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  ingressClassName: kubewire
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /gone, pathType: Prefix, backend: {service: {name: empty, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: secure}
spec:
  ingressClassName: kubewire
  tls: [{hosts: [secure.example], secretName: secure-tls}]
  rules:
  - host: secure.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: locked
  annotations: {nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: nosuch}
spec:
  ingressClassName: kubewire
  rules:
  - host: locked.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
${secureSecret(stateDir)}`;

/** The TLS Secret of secure.example (a leaf of a test CA, made in the test's directory). */
function secureSecret(dir: string): string {
  const ca = makeCa(dir);
  const leaf = makeLeaf(ca, 'secure', 'secure.example', 'p256');
  return tlsSecretYaml('secure-tls', leaf.crt, leaf.key);
}

function sh(netns: string, ...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8', timeout: 10_000 });
}

/** Nothing of a trace is left in the cluster's namespaces: no trace table, no marked conntrack entry, no observer. */
function assertNothingLeft(cluster: string): void {
  const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`kw_${cluster}_`));
  assert.ok(namespaces.length > 5);
  for (const ns of namespaces) {
    assert.doesNotMatch(sh(ns, 'nft', 'list', 'tables'), new RegExp(TRACE_TABLE), `trace table left in ${ns}`);
    assert.doesNotMatch(sh(ns, 'iptables-legacy-save'), /KUBEWIRE-TRACE/, `trace chains left in ${ns}`);
    let marked = '';
    try {
      marked = sh(ns, 'conntrack', '-L', '-m', `${TRACE_CT_MARK}/${TRACE_CT_MASK}`);
    } catch {
      // exit 1: nothing listed
    }
    assert.equal(marked.trim(), '', `trace conntrack entries left in ${ns}`);
  }
  const observers = execFileSync('sh', ['-c', 'pgrep -af \"^(nft monitor|tcpdump -i nflog)\" || true'], { encoding: 'utf8' });
  assert.equal(observers.trim(), '', 'observer processes left');
}

describe('kubewire trace, iptables mode', { skip: NOT_ROOT }, () => {
  const cluster = 'ktrace';
  let stateDir: string;
  let kube: Kube;
  let node1: string;
  let node2: string;
  const trace = async (...args: string[]): Promise<Trace> => JSON.parse(await kube.ok('trace', ...args, '-o', 'json')) as Trace;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-trace-'));
    kube = new Kube(cluster, stateDir);
    process.env.KUBEWIRE_STATE_DIR = stateDir; // loadCluster, for the in-process differential run
    // The breakages below must hold while they are traced: the router's routes are not healed behind them.
    const up = await kube.run(['up', '--nodes', '3'], { env: { KUBEWIRE_ROUTE_RESYNC_SECONDS: '0' } });
    assert.equal(up.code, 0, up.stderr);
    node1 = `${cluster}-node-1`;
    node2 = `${cluster}-node-2`;
    await kube.apply(manifest(node1, node2, stateDir));
    await waitFor('all pods running', async () => {
      const pods = (await kube.json<{ items: Pod[] }>('get', 'pods')).items;
      return pods.length === 6 && pods.every((p) => p.status?.phase === 'Running');
    }, 30_000);
    // Endpoints reach every node's rules.
    await waitFor('the web Service answers', async () => (await kube.run(['exec', 'client', '--', 'curl', '-s', '-m', '1', 'http://web/'])).code === 0, 20_000);
  });

  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  const pods = async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items;

  test('pod to pod on the same node: bridged by cni0, delivered to the listening process', async () => {
    const t = await trace('pod/client', 'pod/neighbour');
    assert.equal(t.verdict, 'delivered', t.reason);
    assert.equal(t.fate, 'connected');
    assert.match(t.destination!.pod!, /default\/neighbour/);
    assert.equal(t.destination!.port, 8080);
    assert.match(t.destination!.process!, /pid \d+/);
    assert.ok(t.hops.some((h) => h.kind === 'l2' && /bridge cni0: FDB .* → port veth/.test(h.detail)), 'the FDB decision on cni0');
    assert.ok(!t.hops.some((h) => h.netns === 'network'), 'same-node traffic never reaches the underlay');
    assert.equal(t.reply?.verdict, 'delivered');
    assertNothingLeft(cluster);
  });

  test('pod to pod across nodes: via the router, which routes by node CIDR, without NAT', async () => {
    const t = await trace('pod/client', 'pod/far');
    assert.equal(t.verdict, 'delivered', t.reason);
    const routed = t.hops.find((h) => h.netns === 'network' && h.kind === 'l3');
    assert.match(routed!.detail, /route 10\.244\.1\.0\/24 via 172\.18\.0\.12/);
    assert.ok(!t.hops.some((h) => h.translation), 'the pod address crosses nodes unchanged');
    const arrived = t.hops.find((h) => h.netns === 'pod/default/far' && h.kind === 'l2');
    const client = (await pods()).find((p) => p.metadata.name === 'client')!;
    assert.match(arrived!.detail, new RegExp(`${client.status!.podIP!.replaceAll('.', '\\.')} →`));
  });

  test('Service from a pod: KUBE-SERVICES → KUBE-SVC → KUBE-SEP, DNAT to an endpoint, un-DNAT on the reply', async () => {
    const t = await trace('pod/client', 'service/web');
    assert.equal(t.verdict, 'delivered', t.reason);
    const rules = t.hops.filter((h) => h.kind === 'netfilter').map((h) => h.rule ?? '');
    assert.ok(rules.some((r) => /^-A KUBE-SERVICES .*default\/web:http cluster IP.* -j KUBE-SVC-/.test(r)), 'the Service rule');
    assert.ok(rules.some((r) => /^-A KUBE-SEP-\S+ .* -j DNAT --to-destination 10\.244\.\d+\.\d+:8080/.test(r)), 'the endpoint rule');
    const ct = t.hops.find((h) => h.kind === 'conntrack');
    assert.match(ct!.translation!, /DNAT 10\.\d+\.\d+\.\d+:80 → 10\.244\.\d+\.\d+:8080/);
    assert.match(t.destination!.pod!, /default\/web-/);
    assert.equal(t.reply?.verdict, 'delivered');
  });

  test('Service from a node, and hairpin (a pod to its own Service)', async () => {
    const fromNode = await trace(`node/${node2}`, 'service/web');
    assert.equal(fromNode.verdict, 'delivered', fromNode.reason);
    assert.ok(fromNode.hops.some((h) => h.kind === 'netfilter' && /^-A OUTPUT .*KUBE-SERVICES/.test(h.rule ?? '')), 'locally generated: nat OUTPUT');
    const hairpin = await trace('pod/neighbour', 'service/solo');
    assert.equal(hairpin.verdict, 'delivered', hairpin.reason);
    assert.equal(hairpin.destination!.pod, 'default/neighbour');
    assert.ok(hairpin.hops.some((h) => /KUBE-MARK-MASQ/.test(h.rule ?? '')), 'hairpin traffic is marked for masquerade');
    assert.ok(hairpin.hops.some((h) => /SNAT/.test(h.translation ?? '') || /source/.test(h.translation ?? '')), 'and masqueraded');
  });

  test('NodePort from outside: masqueraded to the endpoint; externalTrafficPolicy Local drops on a node without endpoints', async () => {
    const svc = await kube.json<Service>('get', 'service', 'web');
    const nodeIP = '172.18.0.11';
    const t = await trace('external', `${nodeIP}:${svc.spec.ports![0]!.nodePort}`);
    assert.equal(t.verdict, 'delivered', t.reason);
    assert.ok(t.hops.some((h) => /-j MASQUERADE/.test(h.rule ?? '')), 'KUBE-POSTROUTING masquerades');
    assert.match(t.hops.find((h) => h.kind === 'conntrack')!.translation!, /SNAT 172\.18\.0\.200/);
    const local = await kube.json<Service>('get', 'service', 'local');
    const dropped = await trace('external', `${nodeIP}:${local.spec.ports![0]!.nodePort}`);
    assert.equal(dropped.verdict, 'dropped');
    assert.match(dropped.reason, /node\/ktrace-node-1 .*has no local endpoints.*externalTrafficPolicy Local/);
    assert.equal(dropped.fate, 'timeout');
    const served = await trace('external', `172.18.0.12:${local.spec.ports![0]!.nodePort}`);
    assert.equal(served.verdict, 'delivered', served.reason);
  });

  test('a Service without endpoints is rejected by its REJECT rule', async () => {
    const t = await trace('pod/client', 'service/empty');
    assert.equal(t.verdict, 'rejected');
    assert.match(t.reason, /default\/empty has no endpoints.*-j REJECT/);
    assert.equal(t.fate, 'refused');
    assert.match(JSON.stringify(t.reply), /destination-unreachable/);
  });

  test('through the ingress: the HTTP hop names the rule and the endpoint, and the second leg is walked to the pod', async () => {
    const t = await trace('external', 'http://shop.example/cart', '--node', node2);
    assert.equal(t.verdict, 'delivered', t.reason);
    const ingress = t.hops.find((h) => h.kind === 'ingress')!;
    assert.match(ingress.rule!, /^ingress default\/shop rule shop\.example\/ \(Prefix\) -> service default\/web:80$/);
    assert.match(ingress.detail, /^HTTP GET shop\.example\/cart answered 200: endpoint (10\.244\.\d+\.\d+):8080 chosen$/);
    const endpoint = /endpoint (\S+):8080/.exec(ingress.detail)![1];
    assert.equal(t.destination!.ip, endpoint, 'the endpoint the controller chose is where the trace delivers');
    assert.match(t.destination!.pod!, /default\/web-/);
    const before = t.hops.slice(0, t.hops.indexOf(ingress));
    assert.ok(before.some((h) => h.kind === 'socket' && h.netns === `node/${node2}`), 'the first leg ends at the controller on the node');
    const after = t.hops.slice(t.hops.indexOf(ingress) + 1);
    assert.ok(after.some((h) => h.netns === `pod/${t.destination!.pod}` && h.kind === 'socket'), 'the second leg reaches the pod');
    assert.equal(t.reply?.verdict, 'delivered');
    // No rule for the host: the controller answers 404 itself; no endpoints: 503.
    const unknown = await trace('external', 'http://nobody.example/');
    assert.equal(unknown.verdict, 'rejected');
    assert.match(unknown.reason, /answered 404 itself: no Ingress rule matches host nobody\.example path \/$/);
    const gone = await trace('external', 'http://shop.example/gone');
    assert.equal(gone.verdict, 'rejected');
    assert.match(gone.reason, /answered 503 itself: service default\/empty has no ready endpoints/);
    // The controller's own reason: a 503 for a missing auth Secret is not one for missing endpoints.
    const locked = await trace('external', 'http://locked.example/');
    assert.equal(locked.verdict, 'rejected');
    assert.match(locked.reason, /answered 503 itself: annotation nginx\.ingress\.kubernetes\.io\/auth-secret: Secret default\/nosuch not found/);
    assertNothingLeft(cluster);
  });

  test('through the ingress with TLS: http:// meets the redirect (answered), https:// is traced through TLS with SNI to the pod', async () => {
    const redirected = await trace('external', 'http://secure.example/cart');
    assert.equal(redirected.verdict, 'answered', redirected.reason);
    assert.match(redirected.reason, /answered 308 itself: the host has TLS: plain HTTP is redirected to https:\/\/secure\.example\/cart/);
    const t = await trace('external', 'https://secure.example/cart', '--node', node2);
    assert.equal(t.verdict, 'delivered', t.reason);
    assert.equal(t.probe.dport, 443);
    const ingress = t.hops.find((h) => h.kind === 'ingress')!;
    assert.match(ingress.detail, /^TLS with SNI secure\.example, certificate not trusted \(X509 verify result \d+\), not checked; HTTPS GET secure\.example\/cart answered 200: endpoint 10\.244\.\d+\.\d+:8080 chosen$/);
    assert.match(t.destination!.pod!, /default\/web-/);
    assert.equal(t.reply?.verdict, 'delivered');
    assertNothingLeft(cluster);
  });

  test('the text form names hops and the verdict; bad input is one clear line', async () => {
    const text = await kube.ok('trace', 'pod/client', 'service/web');
    assert.match(text, /^#\s+WHERE\s+KIND\s+IN\s+OUT\s+WHAT$/m);
    assert.match(text, /^VERDICT: delivered: delivered to pod\/default\/web-/m);
    const refusals = [
      [['pod/nope', 'service/web'], /FROM pod\/nope: no such pod in namespace default/],
      [['pod/client', 'service/nope'], /TO service\/nope: no such Service/],
      [['pod/client', 'deploy/web'], /expected KIND\/NAME/],
      [['pod/client', 'service/web', '--protocol', 'sctp'], /--protocol "sctp": must be tcp, udp or icmp/],
      [['pod/client', 'service/web', '--port', '81'], /it has no port 81/],
      [['external', 'ftp://shop.example/'], /TO "ftp:\/\/shop\.example\/": only http:\/\/ and https:\/\/ are traced/],
      [['external', 'http://shop.example/', '--node', 'nope'], /--node nope: no such node/],
      [['external', '10.96.0.10:99999'], /TO "10\.96\.0\.10:99999": port "99999": a port is a number from 1 to 65535/],
      [['external', '999.1.1.1'], /TO "999\.1\.1\.1": "999\.1\.1\.1" is not an IPv4 address/],
      [['pod/client', '127.0.0.1:22'], /TO "127\.0\.0\.1:22": 127\.0\.0\.1 is a loopback address/],
      [['pod/client', '8.8.8.8:53'], /TO 8\.8\.8\.8: 8\.8\.8\.8 is outside cluster ktrace/],
      [['pod/client', 'service/web', '--port', '0'], /--port "0": a port is a number from 1 to 65535/],
      [['pod/client', 'web.default.svc.cluster.local:81'], /TO service\/web: it has no port 81/],
    ] as const;
    // Refused before anything is put in place: all at once.
    const runs = await Promise.all(refusals.map(([args]) => kube.run(['trace', ...args])));
    for (const [i, [, message]] of refusals.entries()) {
      const r = runs[i]!;
      assert.equal(r.code, 1);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
    assertNothingLeft(cluster);
  });

  test('six traces at once (and the page beside the CLI): each its own rules and captures, all verdicts right, nothing left', async () => {
    await concurrently(kube, cluster, node2);
  });

  test('an interrupted trace (Ctrl-C) removes what it had put in place', async () => {
    await interrupted(kube, cluster);
  });

  test('a broken cluster: the verdict names the hop and the cause', async () => {
    const { networkNetns, nodes } = loadCluster(cluster);
    const [n1, n2] = nodes;
    // A node's route deleted on the router.
    sh(networkNetns, 'ip', 'route', 'del', n2!.podCIDR!);
    try {
      const t = await trace('pod/client', 'pod/far');
      assert.equal(t.verdict, 'dropped');
      assert.match(t.reason, /^network has no route to 10\.244\.1\.\d+/);
      assert.equal(t.fate, 'unreachable');
    } finally {
      sh(networkNetns, 'ip', 'route', 'add', n2!.podCIDR!, 'via', n2!.ip);
    }
    // A DROP rule inserted on a node.
    sh(n1!.netns, 'iptables-legacy', '-I', 'FORWARD', '-d', n2!.podCIDR!, '-j', 'DROP');
    try {
      const t = await trace('pod/client', 'pod/far');
      assert.equal(t.verdict, 'dropped');
      assert.match(t.reason, /dropped on node\/ktrace-node-1 by forward filter FORWARD: -A FORWARD -d 10\.244\.1\.0\/24 -j DROP/);
      assert.equal(t.fate, 'timeout');
    } finally {
      sh(n1!.netns, 'iptables-legacy', '-D', 'FORWARD', '-d', n2!.podCIDR!, '-j', 'DROP');
    }
    // Nothing listening on the port.
    const quiet = await trace('pod/client', 'pod/far', '--port', '9999');
    assert.equal(quiet.verdict, 'dropped');
    assert.match(quiet.reason, /no listener: .*nothing listens on tcp port 9999/);
    assert.equal(quiet.fate, 'refused');
    // The router's neighbour entry poisoned on a node.
    sh(n1!.netns, 'ip', 'neigh', 'replace', '172.18.0.1', 'dev', 'eth0', 'lladdr', '02:00:00:00:00:99');
    try {
      const t = await trace('pod/client', 'pod/far');
      assert.equal(t.verdict, 'dropped');
      assert.match(t.reason, /between node\/ktrace-node-1 and network: the neighbour entry for 172\.18\.0\.1 on eth0 says 02:00:00:00:00:99, but 172\.18\.0\.1 is at/);
      assert.ok(t.hops.some((h) => /no FDB entry for 02:00:00:00:00:99: flooded/.test(h.detail)), 'the underlay floods the unknown address');
    } finally {
      sh(n1!.netns, 'ip', 'neigh', 'del', '172.18.0.1', 'dev', 'eth0');
    }
    // A wrong gateway on node-1: nobody answers ARP for it.
    sh(n1!.netns, 'ip', 'route', 'replace', 'default', 'via', '172.18.0.99');
    try {
      const t = await trace('pod/client', 'pod/far');
      assert.equal(t.verdict, 'dropped');
      assert.match(t.reason, /^dropped on node\/ktrace-node-1: no ARP answer for 172\.18\.0\.99 on eth0 \(neighbour (INCOMPLETE|FAILED)\)/);
    } finally {
      sh(n1!.netns, 'ip', 'route', 'replace', 'default', 'via', '172.18.0.1');
    }
    assert.equal((await trace('pod/client', 'pod/far')).verdict, 'delivered', 'mended');
    assertNothingLeft(cluster);
  });

  test('--matrix: every pod to every pod and Service port', async () => {
    const m = JSON.parse(await kube.ok('trace', '--matrix', '-o', 'json')) as { sources: string[]; targets: string[]; cells: Array<{ from: string; to: string; verdict: string; reason: string }> };
    assert.equal(m.sources.length, 6);
    assert.equal(m.cells.length, m.sources.length * m.targets.length);
    for (const c of m.cells) {
      if (c.to === 'service/empty:80') assert.equal(c.verdict, 'rejected', `${c.from} → ${c.to}`);
      else assert.equal(c.verdict, 'delivered', `${c.from} → ${c.to}: ${c.reason}`);
    }
    const text = await kube.ok('trace', '--matrix');
    assert.match(text, /service\/empty:80: rejected: rejected on node/);
    assertNothingLeft(cluster);
  });

  test('differential: over 200 random probes and breakages (NodePorts, node → ClusterIP, masquerade, the ingress), the verdict is the probe\'s real fate', async () => {
    const plan = loadCluster(cluster);
    const [n1, n2, n3] = plan.nodes;
    const drop = (netns: string, rule: string[]) => ({ on: () => sh(netns, 'iptables-legacy', '-I', ...rule, '-j', 'DROP'), off: () => sh(netns, 'iptables-legacy', '-D', ...rule, '-j', 'DROP') });
    await differential(kube, cluster, [
      { name: 'DROP to node-2 pods on node-1', ...drop(n1!.netns, ['FORWARD', '-d', n2!.podCIDR!]) },
      { name: 'router lost node-3 route', on: () => sh(plan.networkNetns, 'ip', 'route', 'del', n3!.podCIDR!), off: () => sh(plan.networkNetns, 'ip', 'route', 'add', n3!.podCIDR!, 'via', n3!.ip) },
      { name: 'node-2 router MAC poisoned', on: () => sh(n2!.netns, 'ip', 'neigh', 'replace', '172.18.0.1', 'dev', 'eth0', 'lladdr', '02:00:00:00:00:98'), off: () => sh(n2!.netns, 'ip', 'neigh', 'del', '172.18.0.1', 'dev', 'eth0') },
      { name: 'FORWARD DROP of 8080 on node-3', ...drop(n3!.netns, ['FORWARD', '-p', 'tcp', '--dport', '8080']) },
    ]);
  });
});

/** A breakage of the cluster, put in place and taken away around one batch of probes. */
interface Breakage {
  name: string;
  on: () => void;
  off: () => void;
}

/**
 * The differential run: random probes from every place to pods, Services, NodePorts and through
 * the ingress (HTTP and HTTPS), plus in every round each node's NodePorts from outside (masqueraded),
 * a ClusterIP from each node, and the ingress at each node; under each breakage in turn. The
 * trace's verdict must be the probe's real fate: delivered when the sender connected (for HTTP:
 * when an endpoint answered), answered or rejected when the ingress answered itself, dropped otherwise.
 */
async function differential(kube: Kube, cluster: string, breakages: Breakage[]): Promise<void> {
  const plan = loadCluster(cluster);
  const podList = (await kube.json<{ items: Pod[] }>('get', 'pods')).items.filter((p) => p.status?.phase === 'Running' && p.metadata.namespace === 'default');
  const services = (await kube.json<{ items: Service[] }>('get', 'services')).items;
  const ingresses = (await kube.json<{ items: Ingress[] }>('get', 'ingresses')).items;
  const view: ClusterView = { plan, pods: podList, services, ingresses };
  const places = [...infrastructure(plan), ...podList.map((p) => podPlace(plan, p)!)];
  const sources = places.filter((p) => p.kind !== 'network');
  const external = places.find((p) => p.kind === 'external')!;
  const nodes = places.filter((p) => p.kind === 'node');
  const web = services.find((s) => s.metadata.name === 'web')!;
  const local = services.find((s) => s.metadata.name === 'local')!;
  type Target = Omit<ProbeSpec, 'from'>;
  const http = (dst: string, host: string, path: string, tls = false): Target => ({ protocol: 'tcp', dst, dport: tls ? 443 : 80, http: { host, path, tls } });
  const targets: Target[] = [
    ...podList.map((p) => ({ protocol: 'tcp' as const, dst: p.status!.podIP!, dport: 8080 })),
    ...podList.slice(0, 2).map((p) => ({ protocol: 'tcp' as const, dst: p.status!.podIP!, dport: 9999 })),
    ...services.filter((s) => s.spec.clusterIP && s.spec.clusterIP !== 'None' && s.metadata.namespace === 'default' && s.spec.ports?.[0]?.protocol !== 'UDP').map((s) => ({ protocol: 'tcp' as const, dst: s.spec.clusterIP!, dport: s.spec.ports![0]!.port })),
    ...plan.nodes.flatMap((n) => [web, local].map((s) => ({ protocol: 'tcp' as const, dst: n.ip, dport: s.spec.ports![0]!.nodePort! }))),
  ];
  // Every round: each node's NodePorts from outside (masqueraded to the endpoint), web's ClusterIP from each node, the ingress at each node.
  const fixed: ProbeSpec[] = [
    ...plan.nodes.flatMap((n) => [web, local].map((s) => ({ from: external, protocol: 'tcp' as const, dst: n.ip, dport: s.spec.ports![0]!.nodePort! }))),
    ...nodes.map((from) => ({ from, protocol: 'tcp' as const, dst: web.spec.clusterIP!, dport: 80 })),
    ...plan.nodes.flatMap((n, i) => [http(n.ip, 'shop.example', '/cart'), http(n.ip, i % 2 ? 'secure.example' : 'shop.example', i % 2 ? '/' : '/gone', i % 2 === 1)]).map((t) => ({ from: external, ...t })),
    { from: external, ...http(plan.nodes[0]!.ip, 'secure.example', '/a') },
  ];
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  let compared = 0;
  const kinds = new Set<string>();
  const disagreements: string[] = [];
  for (let round = 0; round < 2; round++) {
    for (const b of [{ name: 'none', on: () => {}, off: () => {} }, ...breakages]) {
      const specs: ProbeSpec[] = [...fixed, ...Array.from({ length: Math.max(12, Math.ceil(210 / (2 * (breakages.length + 1))) - fixed.length) }, () => ({ from: sources[random(sources.length)]!, ...targets[random(targets.length)]! }))];
      b.on();
      try {
        const traces = await traceMany(linux, view, places, specs);
        for (const [i, t] of traces.entries()) {
          compared++;
          const spec = specs[i]!;
          const ingress = t.hops.find((h) => h.kind === 'ingress');
          const status = Number(/(?:answered|HTTPS? GET \S+ answered) (\d{3})/.exec(ingress?.detail ?? '')?.[1] ?? 0);
          const expected = t.fate !== 'connected' ? 'dropped' : !spec.http ? 'delivered' : /endpoint \S+ chosen/.test(ingress?.detail ?? '') && status < 500 ? 'delivered' : status && status < 400 ? 'answered' : 'rejected';
          const what = spec.http ? `ingress ${spec.http.tls ? 'https' : 'http'}` : spec.from.kind === 'node' && spec.dst === web.spec.clusterIP ? 'node → ClusterIP' : t.hops.some((h) => /SNAT|source /.test(h.translation ?? '')) ? 'masqueraded' : plan.nodes.some((n) => n.ip === spec.dst) ? 'NodePort' : 'other';
          if (t.fate === 'connected' && expected === t.verdict) kinds.add(what);
          if (t.verdict === 'rejected' && expected === 'dropped' && !spec.http) continue; // a refusal: the sender saw its reset or ICMP error, which is not a connection
          if (expected !== t.verdict && !(expected === 'dropped' && t.verdict === 'rejected')) disagreements.push(`[${b.name}] ${t.probe.from} → ${t.probe.dst}:${t.probe.dport}${spec.http ? ` ${spec.http.host}${spec.http.path}` : ''} (${what}): trace ${t.verdict} (${t.reason}), probe ${t.fate}, expected ${expected}`);
        }
      } finally {
        b.off();
      }
    }
  }
  assert.ok(compared >= 200, `${compared} combinations`);
  assert.deepEqual(disagreements, []);
  for (const k of ['masqueraded', 'node → ClusterIP', 'ingress http', 'ingress https']) assert.ok(kinds.has(k), `delivered ${k} probes were compared (${[...kinds].join(', ')})`);
  assertNothingLeft(cluster);
}

/** Six traces at once: five through the CLI (each its own process), one in this process (as the page runs them); all right, nothing left. */
async function concurrently(kube: Kube, cluster: string, node2: string): Promise<void> {
  const plan = loadCluster(cluster);
  const web = await kube.json<Service>('get', 'service', 'web');
  const started = Date.now();
  const runs = await Promise.all([
    kube.run(['trace', 'pod/client', 'service/web', '-o', 'json']),
    kube.run(['trace', 'external', `${plan.nodes[0]!.ip}:${web.spec.ports![0]!.nodePort}`, '-o', 'json']),
    kube.run(['trace', `node/${node2}`, 'service/web', '-o', 'json']),
    kube.run(['trace', 'external', 'http://shop.example/cart', '--node', node2, '-o', 'json']),
    kube.run(['trace', 'pod/client', 'service/empty', '-o', 'json']),
    (async () => {
      const pods = (await kube.json<{ items: Pod[] }>('get', 'pods')).items;
      const services = (await kube.json<{ items: Service[] }>('get', 'services')).items;
      const t = await traceOne(linux, { plan, pods, services }, parseTraceRequest({ from: 'pod/far', to: 'service/web' }));
      return { code: 0, stdout: JSON.stringify(t), stderr: '' };
    })(),
  ]);
  const traces = runs.map((r, i) => {
    assert.equal(r.code, 0, `trace ${i + 1}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Trace;
  });
  assert.deepEqual(traces.map((t) => t.verdict), ['delivered', 'delivered', 'delivered', 'delivered', 'rejected', 'delivered'], traces.map((t) => t.reason).join('\n'));
  assert.deepEqual(traces.map((t) => t.fate), ['connected', 'connected', 'connected', 'connected', 'refused', 'connected']);
  assert.equal(new Set(traces.map((t) => t.probe.sport)).size, 6, 'each session its own ports');
  assert.ok(Date.now() - started < 60_000);
  assertNothingLeft(cluster);
}

/** A trace interrupted once its rules are in place (SIGINT, as Ctrl-C sends): no table, chain, conntrack entry or observer stays. */
async function interrupted(kube: Kube, cluster: string): Promise<void> {
  const { nodes } = loadCluster(cluster);
  const node1 = nodes[0]!.netns;
  // A probe that waits its whole time (externalTrafficPolicy Local, no endpoint on node 1): the interrupt comes while it is out.
  const local = await kube.json<Service>('get', 'service', 'local');
  for (const extra of [0, 400]) {
    const child = execFile(process.execPath, [BIN, 'trace', 'external', `${nodes[0]!.ip}:${local.spec.ports![0]!.nodePort}`, '--timeout', '3'], { env: { ...process.env, KUBEWIRE_STATE_DIR: kube.stateDir, KUBEWIRE_CLUSTER: cluster } });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const ended = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitFor('the trace\'s table in place', async () => /kubewire-trace-\d+/.test(sh(node1, 'nft', 'list', 'tables')), 20_000);
    await new Promise((r) => setTimeout(r, extra));
    child.kill('SIGINT');
    const code = await ended;
    // Right after its rules are in place the trace is cut short; later it may have had all it needed, and ends as usual.
    if (extra === 0 || code !== 0) {
      assert.equal(code, 130, `exit ${code}: ${stderr}`);
      assert.match(stderr, /^the trace was interrupted; what it had put in place is removed\n$/);
    }
    assertNothingLeft(cluster);
  }
}

describe('kubewire trace, nftables mode', { skip: NOT_ROOT }, () => {
  const cluster = 'ktracenf';
  let stateDir: string;
  let kube: Kube;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-tracenf-'));
    kube = new Kube(cluster, stateDir);
    process.env.KUBEWIRE_STATE_DIR = stateDir; // loadCluster, for the in-process runs
    await kube.ok('up', '--nodes', '2', '--proxy-mode', 'nftables', '--mode', 'host-gw');
    await kube.apply(manifest(`${cluster}-node-1`, `${cluster}-node-2`, stateDir));
    await waitFor('all pods running', async () => {
      const pods = (await kube.json<{ items: Pod[] }>('get', 'pods')).items;
      return pods.length === 6 && pods.every((p) => p.status?.phase === 'Running');
    }, 30_000);
    await waitFor('the web Service answers', async () => (await kube.run(['exec', 'client', '--', 'curl', '-s', '-m', '1', 'http://web/'])).code === 0, 20_000);
  });

  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('a Service through the kube-proxy table: services map, DNAT by numgen, host-gw between nodes', async () => {
    const t = JSON.parse(await kube.ok('trace', 'pod/client', 'pod/far', '-o', 'json')) as Trace;
    assert.equal(t.verdict, 'delivered', t.reason);
    assert.ok(!t.hops.some((h) => h.netns === 'network' && h.kind === 'l3'), 'host-gw: nodes route to each other, not through the router');
    const s = JSON.parse(await kube.ok('trace', 'pod/client', 'service/web', '-o', 'json')) as Trace;
    assert.equal(s.verdict, 'delivered', s.reason);
    const rules = s.hops.filter((h) => h.kind === 'netfilter').map((h) => `${h.detail} ${h.rule}`);
    assert.ok(rules.some((r) => /services .*vmap @service-ips/.test(r)), `the services map: ${rules.join('\n')}`);
    assert.ok(rules.some((r) => /dnat .*numgen random mod \d+ map @backends/.test(r)), 'the endpoints are picked by numgen');
    assert.ok(s.hops.some((h) => /destination 10\.\d+\.\d+\.\d+:80 → 10\.244\.\d+\.\d+:8080/.test(h.translation ?? '')), 'the DNAT as the packet shows it');
    const empty = JSON.parse(await kube.ok('trace', 'pod/client', 'service/empty', '-o', 'json')) as Trace;
    assert.equal(empty.verdict, 'rejected', empty.reason);
    assertNothingLeft(cluster);
  });

  test('masqueraded paths (fully-random: a new source port), followed through the port change: NodePort from outside, node → ClusterIP', async () => {
    const web = await kube.json<Service>('get', 'service', 'web');
    for (const node of ['172.18.0.11', '172.18.0.12']) {
      const t = JSON.parse(await kube.ok('trace', 'external', `${node}:${web.spec.ports![0]!.nodePort}`, '-o', 'json')) as Trace;
      assert.equal(t.fate, 'connected');
      assert.equal(t.verdict, 'delivered', t.reason);
      assert.ok(t.hops.some((h) => h.kind === 'netfilter' && /masquerade fully-random/.test(h.rule ?? '')), 'the masquerade rule');
      const snat = /SNAT 172\.18\.0\.200:(\d+) → (\S+):(\d+)/.exec(t.hops.find((h) => h.kind === 'conntrack')?.translation ?? '');
      assert.ok(snat, 'the conntrack entry tells the new tuple');
      assert.ok(t.hops.some((h) => h.kind === 'l2' && h.detail.includes(` → ${t.destination!.ip} (tcp ${snat[3]} → 8080)`)), `the packet is followed under its new source port ${snat[3]}`);
      assert.match(t.destination!.pod!, /default\/web-/);
      assert.equal(t.reply?.verdict, 'delivered', t.reply?.reason);
    }
    for (const node of [`${cluster}-node-1`, `${cluster}-node-2`]) {
      const t = JSON.parse(await kube.ok('trace', `node/${node}`, 'service/web', '-o', 'json')) as Trace;
      assert.equal(t.verdict, 'delivered', t.reason);
      assert.equal(t.fate, 'connected');
    }
    assertNothingLeft(cluster);
  });

  test('the ingress: http (and its redirect for a TLS host), https through TLS, the 503s\' true causes', async () => {
    const t = async (...a: string[]) => JSON.parse(await kube.ok('trace', ...a, '-o', 'json')) as Trace;
    const verdict = async (want: string, ...a: string[]) => {
      const x = await t(...a);
      assert.equal(x.verdict, want, `${a.join(' ')}: ${x.reason}\n${x.hops.map((h) => `${h.netns} ${h.kind}: ${h.detail}`).join('\n')}`);
    };
    await verdict('delivered', 'external', 'http://shop.example/cart');
    await verdict('answered', 'external', 'http://secure.example/');
    await verdict('delivered', 'external', 'https://secure.example/', '--node', `${cluster}-node-2`);
    assert.match((await t('external', 'http://locked.example/')).reason, /Secret default\/nosuch not found/);
    assert.match((await t('external', 'http://shop.example/gone')).reason, /service default\/empty has no ready endpoints/);
    assertNothingLeft(cluster);
  });

  test('six traces at once', async () => {
    await concurrently(kube, cluster, `${cluster}-node-2`);
  });

  test('differential in nftables mode: NodePorts, node → ClusterIP, masquerade, the ingress, under breakages', async () => {
    const plan = loadCluster(cluster);
    const [n1, n2] = plan.nodes;
    // Breakages in a table of their own (nft), taken away whole.
    const table = (netns: string, rule: string) => ({ on: () => execFileSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: `table ip kwt-break {\n chain c {\n type filter hook forward priority 0; policy accept;\n ${rule}\n }\n}\n` }), off: () => sh(netns, 'nft', 'delete', 'table', 'ip', 'kwt-break') });
    await differential(kube, cluster, [
      { name: 'forward drop to node-2 pods on node-1', ...table(n1!.netns, `ip daddr ${n2!.podCIDR} drop`) },
      { name: 'forward drop of 8080 on node-2', ...table(n2!.netns, 'tcp dport 8080 drop') },
      { name: 'node-1 neighbour of node-2 poisoned', on: () => sh(n1!.netns, 'ip', 'neigh', 'replace', n2!.ip, 'dev', 'eth0', 'lladdr', '02:00:00:00:00:97'), off: () => sh(n1!.netns, 'ip', 'neigh', 'del', n2!.ip, 'dev', 'eth0') },
    ]);
  });
});
