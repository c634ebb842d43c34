// `up --mode vxlan` end to end (root): flannel's vxlan backend on real kernels. Pods on two
// nodes reach each other with their own addresses while the underlay carries only UDP 8472
// between node addresses (a capture on it shows no pod address outside); a 1400-byte ping
// with DF crosses; Services and NodePorts work; the router holds no pod route; trace names
// the overlay hop.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Pod, Service } from '../src/api/types.ts';
import { NOT_ROOT } from './helpers.ts';
import { echoPod, field, Kube, waitFor, webApp } from './kube.ts';

describe('vxlan mode', { skip: NOT_ROOT }, () => {
  const cluster = 'kvx';
  let stateDir: string;
  let kube: Kube;
  const ip = async (name: string) => (await kube.json<Pod>('get', 'pod', name)).status!.podIP!;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-vxlan-'));
    kube = new Kube(cluster, stateDir);
    await kube.ok('up', '--nodes', '2', '--mode', 'vxlan');
    await kube.apply(`${echoPod('a', { node: 'kvx-node-1' })}---\n${echoPod('b', { node: 'kvx-node-2' })}---\n${webApp({ serviceType: 'NodePort' })}`);
    await waitFor('pods running', async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items.filter((p) => p.status?.phase === 'Running').length === 4, 30_000);
  });

  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('pods across nodes keep their addresses; the underlay carries only VXLAN between node addresses', async () => {
    const [a, b] = [await ip('a'), await ip('b')];
    // Capture the underlay while a talks to b: every IPv4 packet is UDP 8472 between node
    // addresses (IPv6 multicast listener reports of links just up would take the count's places).
    const capture = spawn('ip', ['netns', 'exec', `kw_${cluster}_network`, 'timeout', '5', 'tcpdump', '-nn', '-l', '-i', 'underlay', '-c', '6', 'ip'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let seen = '';
    capture.stdout.on('data', (d: Buffer) => (seen += d.toString()));
    const done = new Promise((r) => capture.once('exit', r));
    await new Promise((r) => setTimeout(r, 500));
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

  test('the router holds no pod route; each node has flannel.1 with its peers', () => {
    const routes = execFileSync('ip', ['-n', `kw_${cluster}_network`, 'route'], { encoding: 'utf8' });
    assert.doesNotMatch(routes, /10\.244\./);
    const node1 = execFileSync('ip', ['-n', `kw_${cluster}_node-1`, 'route'], { encoding: 'utf8' });
    assert.match(node1, /10\.244\.1\.0\/24 via 10\.244\.1\.0 dev flannel\.1 onlink/);
    assert.match(execFileSync('bridge', ['-n', `kw_${cluster}_node-1`, 'fdb', 'show', 'dev', 'flannel.1'], { encoding: 'utf8' }), /dst 172\.18\.0\.12 self permanent/);
  });

  test('describe node shows the overlay: the VTEP, its peers in the FDB, their neighbour entries and routes', async () => {
    const text = await kube.ok('describe', 'node', 'kvx-node-1');
    assert.match(text, /Overlay \(VXLAN, as flannel's backend\):/);
    assert.match(text, /flannel\.1 +10\.244\.0\.0\/32 +mac 0e:6b:77:00:00:01 +mtu 1450 +VNI 1, UDP 8472, local 172\.18\.0\.11/);
    assert.match(text, /0e:6b:77:00:00:02 +172\.18\.0\.12/);
    assert.match(text, /10\.244\.1\.0 +flannel\.1 +0e:6b:77:00:00:02 +PERMANENT/);
    assert.match(text, /10\.244\.1\.0\/24 via 10\.244\.1\.0 dev flannel\.1/);
  });

  test('Services and NodePorts work over the overlay, and trace names the VXLAN hop', async () => {
    const svc = await kube.json<Service>('get', 'service', 'web');
    for (let i = 0; i < 4; i++) assert.ok(field(await kube.ok('exec', 'a', '--', 'curl', '-s', '-m', '3', `http://${svc.spec.clusterIP}/`), 'pod'));
    for (const node of ['172.18.0.11', '172.18.0.12']) assert.ok(field(await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '3', `http://${node}:${svc.spec.ports![0]!.nodePort}/`), 'pod'));
    const t = JSON.parse(await kube.ok('trace', 'pod/a', 'pod/b', '-o', 'json'));
    assert.equal(t.verdict, 'delivered', t.reason);
    assert.ok(t.hops.some((h: { detail: string }) => /^VXLAN flannel\.1: .* wrapped in UDP 172\.18\.0\.11 → 172\.18\.0\.12:8472 \(VNI 1\)/.test(h.detail)), JSON.stringify(t.hops.map((h: { detail: string }) => h.detail)));
    assert.ok(t.hops.some((h: { netns: string; in?: string }) => h.netns === 'node/kvx-node-2' && h.in === 'flannel.1'));
  });
});
