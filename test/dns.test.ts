// Cluster DNS end to end (root): a two-node cluster, its kube-system/coredns pods behind
// kube-dns 10.96.0.10, and pods whose containers resolve with the real resolvers (getent,
// dig, curl by name) through the resolv.conf, hosts and hostname the node agent wrote for them.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Pod, Service } from '../src/api/types.ts';
import { NOT_ROOT } from './helpers.ts';
import { field, Kube, waitFor, webApp } from './kube.ts';

/** A selector-less headless Service with 60 addresses: its A answer does not fit 512 bytes. */
const bigSlice = () => {
  const endpoints = Array.from({ length: 60 }, (_, i) => `  - addresses: ["10.244.200.${i + 1}"]\n    conditions: {ready: true}`).join('\n');
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: big-1, labels: {kubernetes.io/service-name: big}}
addressType: IPv4
ports: [{name: http, port: 80, protocol: TCP}]
endpoints:
${endpoints}
`;
};

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
${webApp()}---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: peers}
spec:
  clusterIP: None
  selector: {app: peers}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: peer-a, labels: {app: peers}}
spec:
  hostname: p0
  subdomain: peers
  containers: [{name: web, image: kubewire/echo, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: peer-b, labels: {app: peers}}
spec:
  containers: [{name: web, image: kubewire/echo, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.org}
---
apiVersion: v1
kind: Service
metadata: {name: big}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
${bigSlice()}---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  hostAliases: [{ip: 192.0.2.9, hostnames: [legacy.corp]}]
  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  dnsPolicy: Default
  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: custom}
spec:
  dnsPolicy: "None"
  dnsConfig: {nameservers: [10.96.0.10], searches: [shop.svc.cluster.local], options: [{name: ndots, value: "2"}]}
  containers: [{name: c, image: kubewire/echo, ports: [{containerPort: 8080}]}]
`;

describe('cluster DNS', { skip: NOT_ROOT }, () => {
  const cluster = `kwd${process.pid % 100000}`;
  let stateDir: string;
  let kube: Kube;
  const inClient = (...argv: string[]) => kube.ok('exec', 'client', '--', ...argv);
  const dig = (...args: string[]) => inClient('dig', '+short', '+time=2', '+tries=2', ...args).then((s) => s.trim().split('\n').filter(Boolean));

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-dns-'));
    kube = new Kube(cluster, stateDir);
    // Names outside the cluster go to a resolver outside it: dnsmasq on the external client.
    await kube.ok('up', '--upstream-dns', '172.18.0.200');
    await kube.ok('exec', '--external', '--', 'dnsmasq', '--user=root', '--no-resolv', '--no-hosts', '--address=/example.org/192.0.2.80', `--pid-file=${join(stateDir, 'dnsmasq.pid')}`);
    await kube.apply(MANIFEST);
    await kube.ok('rollout', 'status', '-n', 'kube-system', 'deployment/coredns', '--timeout', '30s');
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '30s');
    await kube.ok('wait', '--for=condition=Ready', 'pod/client', 'pod/peer-a', 'pod/peer-b', 'pod/plain', 'pod/custom', '--timeout', '30s');
  });
  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('kube-dns is 10.96.0.10 with ports dns and dns-tcp; two coredns pods on different nodes', async () => {
    const svc = await kube.json<Service>('get', 'service', '-n', 'kube-system', 'kube-dns');
    assert.equal(svc.spec.clusterIP, '10.96.0.10');
    assert.deepEqual(svc.spec.ports?.map((p) => `${p.name}:${p.port}/${p.protocol}`), ['dns:53/UDP', 'dns-tcp:53/TCP', 'metrics:9153/TCP']);
    const pods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-n', 'kube-system', '-l', 'k8s-app=kube-dns')).items;
    assert.equal(pods.length, 2);
    assert.equal(new Set(pods.map((p) => p.spec.nodeName)).size, 2, 'spread over the nodes');
  });

  test("a pod's resolv.conf, hosts and hostname are the kubelet's; the host's stay untouched", async () => {
    const resolv = await inClient('cat', '/etc/resolv.conf');
    assert.match(resolv, /^nameserver 10\.96\.0\.10$/m);
    assert.match(resolv, /^search default\.svc\.cluster\.local svc\.cluster\.local cluster\.local\b/m);
    assert.match(resolv, /^options ndots:5$/m);
    assert.match(await inClient('cat', '/etc/hosts'), /^192\.0\.2\.9\tlegacy\.corp$/m);
    assert.equal((await inClient('hostname')).trim(), 'client');
    assert.equal((await kube.ok('exec', 'peer-a', '--', 'hostname')).trim(), 'p0');
    assert.match(await kube.ok('exec', 'peer-a', '--', 'cat', '/etc/hosts'), /\tp0\.peers\.default\.svc\.cluster\.local\tp0$/m);
    const plain = await kube.ok('exec', 'plain', '--', 'cat', '/etc/resolv.conf');
    assert.doesNotMatch(plain, /10\.96\.0\.10/, "Default: the node's resolver, not the cluster's");
    for (const ns of readFileSync('/etc/resolv.conf', 'utf8').match(/^nameserver\s+\S+/gm) ?? []) assert.ok(plain.includes(ns.replace(/\s+/, ' ')), `${ns} in ${plain}`);
    assert.equal(await kube.ok('exec', 'custom', '--', 'cat', '/etc/resolv.conf'), 'search shop.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:2\n');
    assert.doesNotMatch(readFileSync('/etc/resolv.conf', 'utf8'), /10\.96\.0\.10/, "the host's resolv.conf is not the pod's");
    assert.match(await kube.ok('describe', 'pod', 'client'), /resolv\.conf:\s+search default\.svc\.cluster\.local/);
  });

  test('short names through the search path, other namespaces, curl by name', async () => {
    const web = (await kube.json<Service>('get', 'service', 'web')).spec.clusterIP!;
    const db = (await kube.json<Service>('get', 'service', '-n', 'shop', 'db')).spec.clusterIP!;
    assert.match(await inClient('getent', 'hosts', 'web'), new RegExp(`^${web.replace(/\./g, '\\.')}\\s+web\\.default\\.svc\\.cluster\\.local`));
    assert.match(await inClient('getent', 'hosts', 'db.shop'), new RegExp(`^${db.replace(/\./g, '\\.')}\\s`));
    assert.match(await inClient('getent', 'hosts', 'db.shop.svc.cluster.local'), new RegExp(`^${db.replace(/\./g, '\\.')}\\s`));
    const answer = await inClient('curl', '-s', '-m', '5', 'http://web/');
    assert.match(field(answer, 'pod') ?? '', /^web-/, `curl http://web/ reached a web pod: ${answer}`);
    assert.match(await kube.ok('describe', 'service', 'web'), /DNS:\s+web\.default\.svc\.cluster\.local \(A: /);
  });

  test('headless: every ready pod, hostname + subdomain, SRV per endpoint; ExternalName; PTR; pod records; NXDOMAIN', async () => {
    const peers = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=peers')).items;
    const ipOf = (name: string) => peers.find((p) => p.metadata.name === name)!.status!.podIP!;
    assert.deepEqual((await dig('peers.default.svc.cluster.local')).sort(), [ipOf('peer-a'), ipOf('peer-b')].sort());
    assert.deepEqual(await dig('p0.peers.default.svc.cluster.local'), [ipOf('peer-a')]);
    const srv = await dig('_http._tcp.peers.default.svc.cluster.local', 'SRV');
    assert.deepEqual(srv.map((l) => l.split(' ').slice(2).join(' ')).sort(), [`8080 ${ipOf('peer-b').replace(/\./g, '-')}.peers.default.svc.cluster.local.`, '8080 p0.peers.default.svc.cluster.local.'].sort());
    assert.deepEqual(await dig('_http._tcp.web.default.svc.cluster.local', 'SRV'), ['0 100 80 web.default.svc.cluster.local.']);
    assert.equal((await dig('ext.default.svc.cluster.local'))[0], 'example.org.', 'ExternalName: a CNAME');
    const web = (await kube.json<Service>('get', 'service', 'web')).spec.clusterIP!;
    assert.deepEqual(await dig('-x', web), ['web.default.svc.cluster.local.']);
    assert.deepEqual(await dig('-x', ipOf('peer-a')), ['p0.peers.default.svc.cluster.local.']);
    assert.deepEqual(await dig(`${ipOf('peer-b').replace(/\./g, '-')}.default.pod.cluster.local`), [ipOf('peer-b')]);
    const nx = await inClient('dig', '+time=2', 'nope.default.svc.cluster.local');
    assert.match(nx, /status: NXDOMAIN/);
    assert.match(nx, /cluster\.local\.\s+5\s+IN\s+SOA/, 'the SOA for negative caching');
    assert.deepEqual(await dig('example.org'), ['192.0.2.80'], 'other names: forwarded to --upstream-dns');
    assert.match(await inClient('getent', 'hosts', 'ext'), /^192\.0\.2\.80\s+example\.org/, "the ExternalName's CNAME followed by the pod's resolver");
  });

  test('an answer too large for UDP is truncated and comes whole over TCP (dig retries by itself)', async () => {
    const out = await inClient('dig', '+noedns', '+time=2', 'big.default.svc.cluster.local');
    assert.match(out, /Truncated, retrying in TCP mode/);
    assert.match(out, /ANSWER: 60,/);
  });

  test('a Service added resolves within its TTL, a deleted one stops; both DNS pods serve (one deleted, names still resolve)', async () => {
    const t0 = Date.now();
    await kube.apply('apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec: {selector: {app: late}, ports: [{port: 80}]}\n');
    await waitFor('late resolves', async () => (await dig('late.default.svc.cluster.local')).length === 1, 6_000);
    console.log(`# a new Service resolved ${Date.now() - t0} ms after its apply`);
    await kube.ok('delete', 'service', 'late');
    await waitFor('late is gone', async () => /NXDOMAIN/.test(await inClient('dig', '+time=2', 'late.default.svc.cluster.local')), 6_000);
    const dnsPods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-n', 'kube-system', '-l', 'k8s-app=kube-dns')).items;
    await kube.ok('delete', 'pod', '-n', 'kube-system', dnsPods[0]!.metadata.name);
    const answers = await inClient('sh', '-c', 'for i in $(seq 20); do getent hosts web >/dev/null && echo ok || echo FAIL; done');
    assert.deepEqual(answers.trim().split('\n').filter((l) => l !== 'ok'), [], 'every lookup answered while a DNS pod went');
  });

  test('10,000 random datagrams at port 53 leave the DNS answering; the built-in workloads answer with the pod\'s hostname', async () => {
    const flood = `const s = require('dgram').createSocket('udp4'); let n = 0; let seed = 7;
const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
const next = () => { if (n++ >= 10000) return s.close(); const b = Buffer.from(Array.from({ length: 1 + rnd() % 80 }, rnd)); s.send(b, 53, '10.96.0.10', next); };
next();`;
    await inClient('node', '-e', flood);
    assert.equal((await dig('web.default.svc.cluster.local')).length, 1, 'still answering');
    const peerA = (await kube.json<Pod>('get', 'pod', 'peer-a')).status!.podIP!;
    assert.equal(field(await inClient('curl', '-s', '-m', '3', `http://${peerA}:8080/`), 'hostname'), 'p0');
  });

  test('metrics with CoreDNS names, health and readiness on the DNS pods', async () => {
    const pod = (await kube.json<{ items: Pod[] }>('get', 'pods', '-n', 'kube-system', '-l', 'k8s-app=kube-dns')).items.find((p) => p.status?.podIP && !p.metadata.deletionTimestamp)!;
    const ip = pod.status!.podIP!;
    const metrics = await inClient('curl', '-s', '-m', '3', `http://${ip}:9153/metrics`);
    assert.match(metrics, /^coredns_dns_requests_total\{.*proto="udp".*\} \d+/m);
    assert.match(metrics, /^coredns_dns_responses_total\{.*rcode="NXDOMAIN".*\}/m);
    assert.match(metrics, /^coredns_dns_request_duration_seconds_bucket\{/m);
    assert.equal(await inClient('curl', '-s', '-m', '3', `http://${ip}:8080/health`), 'OK');
    assert.equal(await inClient('curl', '-s', '-m', '3', `http://${ip}:8181/ready`), 'OK');
  });
});
