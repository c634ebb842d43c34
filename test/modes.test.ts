// The same end-to-end suite in every routing mode (root): routed, host-gw, vxlan and vpc each
// carry pod to pod on one node and across nodes with the client's own address, node to pod,
// a Service from a pod and from a node, NodePorts from outside, the ingress, cluster DNS and
// trace. Then what is each mode's own: in vpc mode the outside client reaches pods by their
// addresses, SNAT leaves the VPC with the node's address (or not, with --external-snat) and
// the pools follow their targets; in vxlan mode the underlay carries only UDP 8472 between
// node addresses (a capture shows no pod address outside), a 1400-byte ping with DF crosses,
// each node has flannel.1 with its peers and trace names the overlay hop; in host-gw mode a
// hostPort reaches its pod from outside through the node (portmap); in the other modes a
// node deleted and registered again takes its routes with it and brings them back, on the
// router (routed) or on the other nodes (host-gw, vxlan).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Node, Pod, Service } from '../src/api/types.ts';
import { NOT_ROOT } from './helpers.ts';
import { echoPod, field, Kube, waitFor, webApp } from './kube.ts';

const INGRESS = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: kubewire
  rules:
  - host: web.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`;

const NODE_IPS = ['172.18.0.11', '172.18.0.12'];

// Routes deleted by hand are healed on this period (10 s by default): short, to see it here.
process.env.KUBEWIRE_ROUTE_RESYNC_SECONDS = '1';

function routes(netns: string): string {
  return execFileSync('ip', ['-n', netns, 'route'], { encoding: 'utf8' });
}

/** A one-request HTTP server in the external namespace on `addr`:`port` that answers with the client's address. */
function whoSeesMe(kube: Kube, addr: string, port: number): Promise<unknown> {
  const server = `import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(s):
        s.send_response(200); s.end_headers(); s.wfile.write(('client: ' + s.client_address[0]).encode())
    def log_message(s, *a): pass
srv = http.server.HTTPServer(('${addr}', ${port}), H); srv.timeout = 8; srv.handle_request()`;
  return kube.run(['exec', '--external', '--', 'timeout', '10', 'python3', '-c', server]);
}

for (const mode of ['routed', 'host-gw', 'vxlan', 'vpc'] as const) {
  describe(`${mode} mode: the e2e suite`, { skip: NOT_ROOT }, () => {
    const cluster = `km${mode.replace('-', '').slice(0, 4)}`;
    const node = (i: number) => `${cluster}-node-${i}`;
    let stateDir: string;
    let kube: Kube;
    const ip = async (name: string) => (await kube.json<Pod>('get', 'pod', name)).status!.podIP!;
    const clientOf = async (from: string, url: string) => field(await kube.ok('exec', from, '--', 'curl', '-s', '-m', '3', url), 'client')?.split(':')[0];

    before(async () => {
      stateDir = mkdtempSync(join(tmpdir(), `kwt-${cluster}-`));
      kube = new Kube(cluster, stateDir);
      // vpc: a short cooldown of freed addresses, to see it end here (30 s by default).
      await kube.ok('up', '--nodes', '2', '--mode', mode, ...(mode === 'vpc' ? ['--ip-cooldown-period', '3'] : []));
      await kube.apply([echoPod('a', { node: node(1) }), echoPod('b', { node: node(2) }), echoPod('c', { node: node(1) }), webApp({ serviceType: 'NodePort' }), INGRESS].join('---\n'));
      await waitFor('pods running', async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items.filter((p) => p.status?.phase === 'Running').length === 5, 30_000);
    });

    after(async () => {
      await kube.run(['down']);
      rmSync(stateDir, { recursive: true, force: true });
    });

    test('pod to pod on one node and across nodes, with the client\'s own address; a node reaches pods', async () => {
      const [a, b, c] = [await ip('a'), await ip('b'), await ip('c')];
      if (mode === 'vpc') for (const x of [a, b, c]) assert.match(x, /^172\.18\.(?!0\.)/, `vpc: pods take addresses of the VPC's subnet, past its first /24: ${x}`);
      else for (const x of [a, b, c]) assert.match(x, /^10\.244\./);
      assert.equal(await clientOf('a', `http://${c}:8080/`), a, 'same node');
      assert.equal(await clientOf('a', `http://${b}:8080/`), a, 'across nodes: no NAT');
      assert.equal(await clientOf('b', `http://${a}:8080/`), b, 'and back');
      const fromNode = field(execFileSync('ip', ['netns', 'exec', `kw_${cluster}_node-1`, 'curl', '-s', '-m', '3', `http://${b}:8080/`], { encoding: 'utf8' }), 'client')?.split(':')[0];
      assert.ok(fromNode === NODE_IPS[0] || fromNode?.startsWith('10.244.0.'), `node-1 reaches a pod of node-2 with one of its own addresses: ${fromNode}`);
    });

    test('a Service from a pod and from a node; NodePorts from outside on every node; the ingress; cluster DNS', async () => {
      const svc = await kube.json<Service>('get', 'service', 'web');
      const pods = new Set<string>();
      for (let i = 0; i < 6; i++) pods.add(field(await kube.ok('exec', 'a', '--', 'curl', '-s', '-m', '3', `http://${svc.spec.clusterIP}/`), 'pod')!);
      assert.ok(pods.size >= 1 && [...pods].every((p) => p.startsWith('web-')), [...pods].join(' '));
      assert.match(execFileSync('ip', ['netns', 'exec', `kw_${cluster}_node-2`, 'curl', '-s', '-m', '3', `http://${svc.spec.clusterIP}/`], { encoding: 'utf8' }), /pod: web-/);
      for (const n of NODE_IPS) assert.match(await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '3', `http://${n}:${svc.spec.ports![0]!.nodePort}/`), /pod: web-/, `NodePort on ${n}`);
      await waitFor('the ingress routes web.example', async () => /pod: web-/.test((await kube.run(['exec', '--external', '--', 'curl', '-s', '-m', '3', '-H', 'Host: web.example', `http://${NODE_IPS[1]}/`])).stdout), 15_000);
      const answer = (await kube.ok('exec', 'a', '--', 'dig', '+short', '+time=2', '+tries=2', 'web.default.svc.cluster.local')).trim();
      assert.equal(answer, svc.spec.clusterIP, 'cluster DNS answers the Service name');
    });

    test('trace walks pod → Service → pod on another node to delivery', async () => {
      const t = JSON.parse(await kube.ok('trace', 'pod/a', 'pod/b', '--port', '8080', '-o', 'json'));
      assert.equal(t.verdict, 'delivered', t.reason);
      assert.ok(t.hops.some((h: { netns: string }) => h.netns === `node/${node(2)}`), 'the walk crosses node-2');
      if (mode === 'vxlan') {
        assert.ok(t.hops.some((h: { detail: string }) => /^VXLAN flannel\.1: .* wrapped in UDP 172\.18\.0\.11 → 172\.18\.0\.12:8472 \(VNI 1\)/.test(h.detail)), JSON.stringify(t.hops.map((h: { detail: string }) => h.detail)));
        assert.ok(t.hops.some((h: { netns: string; in?: string }) => h.netns === `node/${node(2)}` && h.in === 'flannel.1'), 'the packet comes out of the overlay on node-2');
      }
      const s = JSON.parse(await kube.ok('trace', 'pod/a', 'service/web', '-o', 'json'));
      assert.equal(s.verdict, 'delivered', s.reason);
    });

    if (mode === 'vpc') {
      test('vpc: the outside client reaches pods by their own addresses; SNAT leaves the VPC with the node\'s address', async () => {
        const [a, b] = [await ip('a'), await ip('b')];
        for (const x of [a, b]) assert.equal(field(await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '3', `http://${x}:8080/`), 'client')?.split(':')[0], '172.18.0.200', `the outside client reaches ${x} directly`);
        assert.doesNotMatch(routes(`kw_${cluster}_network`), /172\.18\.[1-9]/, 'the router holds no pod route: the VPC knows each address');
        const outside = whoSeesMe(kube, '203.0.113.10', 9901);
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(field(await kube.ok('exec', 'b', '--', 'curl', '-s', '-m', '3', 'http://203.0.113.10:9901/'), 'client'), NODE_IPS[1], 'leaving the VPC, pod traffic takes its node\'s address');
        await outside;
        const text = await kube.ok('describe', 'node', node(2));
        assert.match(text, /VPC addresses \(this node's pool, as the AWS VPC CNI's ipamd keeps it: \d+ in use, 5 warm; WARM_IP_TARGET 5, MINIMUM_IP_TARGET 0\)/);
        assert.match(text, new RegExp(`${b.replace(/\./g, '\\.')} +pod default/b +→ 0a:6b:77:00:00:02 \\(this node's eth0\\)`));
        assert.match(text, new RegExp(`veth[0-9a-f]+ .* default/b ${b.replace(/\./g, '\\.')} +${b.replace(/\./g, '\\.')} dev veth[0-9a-f]+`));
        assert.match(await kube.ok('exec', 'b', '--', 'ip', 'route'), /default via 169\.254\.1\.1 dev eth0/);
      });

      test('vpc: the warm pool follows WARM_IP_TARGET as pods come and go; a kill -9 of the daemon loses no address', async () => {
        const pool = (n: number) => JSON.parse(readFileSync(join(stateDir, cluster, 'nodes', node(n), 'cni', 'ipamd.json'), 'utf8')) as Record<string, unknown>;
        const count = (n: number) => { const p = pool(n); return { total: Object.keys(p).length, used: Object.values(p).filter(Boolean).length }; };
        await kube.ok('scale', 'deployment', 'web', '--replicas', '10');
        await waitFor('10 web pods running', async () => (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items.filter((p) => p.status?.phase === 'Running').length === 10, 30_000);
        await waitFor('pools topped up to 5 warm', async () => [1, 2].every((n) => count(n).total - count(n).used === 5), 10_000);
        const ips = (await kube.json<{ items: Pod[] }>('get', 'pods')).items.map((p) => p.status?.podIP).filter(Boolean);
        assert.equal(new Set(ips).size, ips.length, 'no address is given twice');
        execFileSync('kill', ['-9', readFileSync(join(stateDir, cluster, 'daemon.pid'), 'utf8').trim()]);
        await kube.ok('up');
        const web = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items;
        for (const p of web.slice(0, 3)) assert.match(await kube.ok('exec', 'a', '--', 'curl', '-s', '-m', '3', `http://${p.status!.podIP}:8080/`), /pod: web-/, 'pods keep serving at their addresses after the restart');
        // A freed address cools down: the next pod on the node gets another one.
        await kube.apply(echoPod('e1', { node: node(1) }));
        await waitFor('e1 running', async () => (await kube.json<Pod>('get', 'pod', 'e1')).status?.phase === 'Running', 20_000);
        const first = await ip('e1');
        await kube.ok('delete', 'pod', 'e1');
        await kube.apply(echoPod('e2', { node: node(1) }));
        await waitFor('e2 running', async () => (await kube.json<Pod>('get', 'pod', 'e2')).status?.phase === 'Running', 20_000);
        assert.notEqual(await ip('e2'), first, `${first} was freed a moment ago: it cools down before another pod gets it`);
        await kube.ok('scale', 'deployment', 'web', '--replicas', '0');
        await waitFor('the web pods gone', async () => (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items.length === 0, 30_000);
        await waitFor('pools back to 5 warm around what is left, once the freed addresses cooled down', async () => [1, 2].every((n) => count(n).total - count(n).used === 5), 20_000);
        const fabric = execFileSync('ip', ['-n', `kw_${cluster}_network`, 'neigh', 'show', 'dev', 'underlay'], { encoding: 'utf8' });
        const held = [1, 2].reduce((s, n) => s + count(n).total, 0);
        assert.equal(fabric.trim().split('\n').filter((l) => /^172\.18\.(?!0\.)/.test(l)).length, held, 'the VPC\'s table holds exactly the addresses the nodes hold');
      });

      test('vpc: --external-snat keeps the pod\'s address leaving the VPC; MINIMUM_IP_TARGET holds addresses no pod uses', async () => {
        const other = new Kube('kmvpcx', stateDir);
        try {
          await other.ok('up', '--nodes', '1', '--mode', 'vpc', '--external-snat', '--warm-ip-target', '0', '--minimum-ip-target', '6');
          await other.apply(echoPod('p'));
          await waitFor('p running', async () => (await other.json<Pod>('get', 'pod', 'p')).status?.phase === 'Running', 20_000);
          const p = (await other.json<Pod>('get', 'pod', 'p')).status!.podIP!;
          const outside = whoSeesMe(other, '203.0.113.10', 9902);
          await new Promise((r) => setTimeout(r, 700));
          assert.equal(field(await other.ok('exec', 'p', '--', 'curl', '-s', '-m', '3', 'http://203.0.113.10:9902/'), 'client'), p, 'the pod\'s own address leaves the VPC');
          await outside;
          // The two DNS pods and p: 3 in use; no warm target, but MINIMUM_IP_TARGET holds 6.
          assert.match(await other.ok('describe', 'node', 'kmvpcx-node-1'), /3 in use, 3 warm; WARM_IP_TARGET 0, MINIMUM_IP_TARGET 6/);
          assert.match(await other.ok('describe', 'node', 'kmvpcx-node-1'), /SNAT: none \(--external-snat/);
        } finally {
          await other.run(['down']);
        }
      });
    }

    if (mode === 'vxlan') {
      test('vxlan: pods across nodes keep their addresses; the underlay carries only VXLAN between node addresses', async () => {
        const [a, b] = [await ip('a'), await ip('b')];
        // Capture the underlay while a talks to b: every IPv4 packet is UDP 8472 between node
        // addresses (IPv6 multicast listener reports of links just up would take the count's places).
        // It ends at its sixth packet (at most 20 s); the request goes once it listens.
        const capture = spawn('ip', ['netns', 'exec', `kw_${cluster}_network`, 'timeout', '20', 'tcpdump', '-nn', '-l', '-i', 'underlay', '-c', '6', 'ip'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let seen = '';
        let said = '';
        capture.stdout.on('data', (d: Buffer) => (seen += d.toString()));
        capture.stderr.on('data', (d: Buffer) => (said += d.toString()));
        const done = new Promise((r) => capture.once('exit', r));
        await waitFor('tcpdump to listen on the underlay', async () => said.includes('listening on'), 10_000);
        const answer = await kube.ok('exec', 'a', '--', 'curl', '-s', '-m', '3', `http://${b}:8080/`);
        assert.equal(field(answer, 'client')?.split(':')[0], a, 'the server sees the client pod itself: no NAT across the overlay');
        await done;
        const lines = seen.split('\n').filter((l) => / IP /.test(l));
        assert.ok(lines.length >= 4, seen);
        for (const l of lines) assert.match(l, /IP 172\.18\.0\.1[12]\.\d+ > 172\.18\.0\.1[12]\.8472: OTV/, `outer headers are node to node, UDP 8472: ${l}`);
        assert.doesNotMatch(lines.join('\n'), /IP 10\.244\.[\d.]+ >/, 'no pod address in an outer header');
        const ping = await kube.run(['exec', 'a', '--', 'ping', '-M', 'do', '-s', '1372', '-c', '1', '-W', '2', b]);
        assert.equal(ping.code, 0, `a 1400-byte packet with DF crosses: ${ping.stdout}${ping.stderr}`);
        assert.match(await kube.ok('exec', 'a', '--', 'ip', 'link', 'show', 'eth0'), /mtu 1450/);
      });

      test('vxlan: the router holds no pod route; each node has flannel.1 with its peers; describe node shows the overlay (the trace of its VXLAN hop: above)', async () => {
        assert.doesNotMatch(routes(`kw_${cluster}_network`), /10\.244\./);
        assert.match(routes(`kw_${cluster}_node-1`), /10\.244\.1\.0\/24 via 10\.244\.1\.0 dev flannel\.1 onlink/);
        assert.match(execFileSync('bridge', ['-n', `kw_${cluster}_node-1`, 'fdb', 'show', 'dev', 'flannel.1'], { encoding: 'utf8' }), /dst 172\.18\.0\.12 self permanent/);
        const text = await kube.ok('describe', 'node', node(1));
        assert.match(text, /Overlay \(VXLAN, as flannel's backend\):/);
        assert.match(text, /flannel\.1 +10\.244\.0\.0\/32 +mac 0e:6b:77:00:00:01 +mtu 1450 +VNI 1, UDP 8472, local 172\.18\.0\.11/);
        assert.match(text, /0e:6b:77:00:00:02 +172\.18\.0\.12/);
        assert.match(text, /10\.244\.1\.0 +flannel\.1 +0e:6b:77:00:00:02 +PERMANENT/);
        assert.match(text, /10\.244\.1\.0\/24 via 10\.244\.1\.0 dev flannel\.1/);
      });
    }

    if (mode === 'host-gw') {
      test("host-gw: each node routes the other's podCIDR via its address; a hostPort reaches the pod from outside through its node (portmap)", async () => {
        assert.match(routes(`kw_${cluster}_node-1`), /10\.244\.1\.0\/24 via 172\.18\.0\.12 dev eth0/);
        await kube.apply(`apiVersion: v1\nkind: Pod\nmetadata: {name: hp}\nspec:\n  nodeName: ${node(2)}\n  containers: [{name: c, image: nginx, ports: [{containerPort: 80, hostPort: 8080}]}]\n`);
        await kube.ok('wait', '--for=condition=Ready', 'pod/hp', '--timeout', '30s');
        const hp = await kube.json<Pod>('get', 'pod', 'hp');
        const body = await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '3', `http://${hp.status!.hostIP}:8080/`);
        assert.equal(field(body, 'pod'), 'hp');
        assert.equal(field(body, 'client')?.split(':')[0], '172.18.0.200', 'DNAT only: the client address is kept');
      });
    }

    if (mode !== 'vpc') {
      test(`${mode}: a node deleted takes its routes off the ${mode === 'routed' ? 'router' : 'other node'} within a second; registered again, it has them back`, async () => {
        const cidr = (await kube.json<Node>('get', 'node', node(2))).spec!.podCIDR!;
        const holder = mode === 'routed' ? `kw_${cluster}_network` : `kw_${cluster}_node-1`;
        assert.ok(routes(holder).includes(cidr));
        // Drift heals: a route deleted by hand comes back (flannel's route check, the route controller's period).
        execFileSync('ip', ['-n', holder, 'route', 'del', cidr]);
        await waitFor(`${holder} routes ${cidr} again after it was deleted by hand`, async () => routes(holder).includes(cidr), 5_000);
        await kube.ok('delete', 'node', node(2));
        const t0 = Date.now();
        await waitFor(`${holder} drops its route to ${cidr}`, async () => !routes(holder).includes(cidr), 5_000);
        const took = Date.now() - t0;
        assert.ok(took < 1000, `the route went in ${took} ms`);
        // The peer's FDB entry goes in the same sync as its route, a step after it.
        if (mode === 'vxlan') await waitFor('the FDB entry of the deleted node to go', async () => !/dst 172\.18\.0\.12/.test(execFileSync('bridge', ['-n', `kw_${cluster}_node-1`, 'fdb', 'show', 'dev', 'flannel.1'], { encoding: 'utf8' })), 1_000);
        // Like a kubelet, the agent registers its node when it starts again.
        execFileSync('kill', ['-9', readFileSync(join(stateDir, cluster, 'daemon.pid'), 'utf8').trim()]);
        await kube.ok('up');
        await waitFor(`${holder} routes ${cidr} again`, async () => routes(holder).includes(cidr), 5_000);
        await kube.apply(echoPod('d', { node: node(2) }));
        await waitFor('d running', async () => (await kube.json<Pod>('get', 'pod', 'd')).status?.phase === 'Running', 20_000);
        assert.equal(await clientOf('a', `http://${await ip('d')}:8080/`), await ip('a'), 'pods across nodes talk again');
      });
    }
  });
}
