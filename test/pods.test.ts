// The seed's picture on a running cluster, driven through the CLI as a user would: pods
// spread over two nodes, each in its own namespace joined to its node's bridge by a veth
// pair; pod-to-pod traffic on one node and across nodes keeps the client's own pod IP (no
// NAT); a node reaches its pods; a pod's containers share localhost; the bridge learns
// the pods' MACs and the node's ARP table holds them. Then the control plane dies (kill
// -9) and comes back without losing or duplicating anything, and `down` leaves nothing.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resourceNamed } from '../src/api/resources.ts';
import type { Deployment, EndpointSlice, Pod } from '../src/api/types.ts';
import { ApiClient } from '../src/client/rest.ts';
import { run } from '../src/dataplane/linux/exec.ts';
import { contains, parseIP, tryParsePrefix } from '../src/netaddr/ip.ts';
import { NOT_ROOT, rootState } from './helpers.ts';
import { field, Kube, waitFor } from './kube.ts';

const MANIFEST = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata:
  name: duo
  labels: {app: duo}
spec:
  containers:
  - name: server
    image: registry.k8s.io/e2e-test-images/agnhost:2.47
    args: ["netexec", "--http-port=8080", "--udp-port=8081"]
  - name: client
    image: curlimages/curl
    command: ["sh", "-c"]
    args: ["while true; do curl -s localhost:8080/hostname; echo; sleep 0.2; done"]
`;

/** Gone, or a zombie waiting for init to reap it: either way it has ended. */
function ended(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

async function clusterNetns(cluster: string): Promise<string[]> {
  return (await run(['ip', 'netns', 'list'])).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`kw_${cluster}_`));
}

describe('pods on a two-node cluster', { skip: NOT_ROOT }, () => {
  const cluster = `kwp${process.pid % 100000}`;
  let stateDir: string;
  let kube: Kube;
  let rootBefore: string;
  let pods: Pod[];
  const running = async () => (await kube.json<{ items: Pod[] }>('get', 'pods')).items;

  before(async () => {
    rootBefore = await rootState();
    stateDir = mkdtempSync(join(tmpdir(), 'kwt-pods-'));
    kube = new Kube(cluster, stateDir);
    const up = await kube.ok('up', '--nodes', '2');
    assert.match(up, /is up in [\d.]+ s/);
  });

  after(async () => {
    // Whatever happened, nothing of the cluster stays behind.
    await kube.run(['down']);
    for (const ns of await clusterNetns(cluster)) await run(['ip', 'netns', 'del', ns]).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('nodes get disjoint podCIDRs from the cluster range and report Ready', async () => {
    const list = await kube.json('get', 'nodes');
    assert.equal(list.kind, 'List');
    assert.equal(list.items.length, 2);
    const cidrs = list.items.map((n: { spec: { podCIDR: string } }) => n.spec.podCIDR);
    assert.equal(new Set(cidrs).size, 2);
    for (const c of cidrs) assert.ok(contains(tryParsePrefix('10.244.0.0/16')!, tryParsePrefix(c)!.ip));
    assert.ok(list.items.every((n: Pod) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')));
  });

  test('apply: a Deployment spread over both nodes and a two-container pod, all Running with IPs', async () => {
    const out = await kube.apply(MANIFEST);
    assert.match(out, /deployment\.apps\/web created\npod\/duo created/);
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '30s');
    await kube.ok('wait', '--for=condition=Ready', 'pod/duo', '--timeout', '30s');
    pods = await running();
    assert.equal(pods.length, 5);
    const nodes = await kube.json('get', 'nodes');
    const web = pods.filter((p) => p.metadata.labels?.app === 'web');
    const perNode = new Map<string, number>();
    for (const p of web) perNode.set(p.spec.nodeName!, (perNode.get(p.spec.nodeName!) ?? 0) + 1);
    assert.deepEqual([...perNode.values()], [2, 2], 'the scheduler spreads replicas');
    const ips = pods.map((p) => p.status!.podIP!);
    assert.equal(new Set(ips).size, pods.length, 'no IP twice');
    for (const p of pods) {
      const node = nodes.items.find((n: { metadata: { name: string } }) => n.metadata.name === p.spec.nodeName);
      assert.ok(contains(tryParsePrefix(node.spec.podCIDR)!, parseIP(p.status!.podIP!)), `${p.metadata.name} ${p.status!.podIP} in ${node.spec.podCIDR}`);
      assert.equal(p.status!.hostIP, node.status.addresses[0].address);
    }
    const table = await kube.ok('get', 'pods', '-o', 'wide');
    assert.match(table, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE/);
    assert.match(table, /duo\s+2\/2\s+Running\s+0/);
  });

  test("a pod's IP is the same inside the pod as the cluster reports it", async () => {
    for (const p of pods) {
      const inside = JSON.parse(await kube.ok('exec', p.metadata.name, '--', 'ip', '-j', '-4', 'addr', 'show', 'eth0'));
      assert.equal(inside[0].addr_info[0].local, p.status!.podIP);
    }
  });

  test('pod to pod, same node and across nodes: the server sees the client pod\'s own IP (no NAT)', async () => {
    const web = pods.filter((p) => p.metadata.labels?.app === 'web');
    const client = web[0]!;
    const sameNode = web.find((p) => p !== client && p.spec.nodeName === client.spec.nodeName)!;
    const otherNode = web.find((p) => p.spec.nodeName !== client.spec.nodeName)!;
    for (const server of [sameNode, otherNode]) {
      const body = await kube.ok('exec', client.metadata.name, '--', 'curl', '-s', '-m', '3', `http://${server.status!.podIP}/`);
      assert.equal(field(body, 'pod'), server.metadata.name);
      assert.equal(field(body, 'node'), server.spec.nodeName);
      assert.equal(field(body, 'client')?.split(':')[0], client.status!.podIP, body);
    }
    // The server's log records the same client address.
    const log = await kube.ok('logs', otherNode.metadata.name);
    assert.match(log, new RegExp(`${client.status!.podIP!.replace(/\./g, '\\.')}:\\d+ GET / 200`));
  });

  test('a node reaches its pods directly (from its cni0 address)', async () => {
    const p = pods.find((x) => x.metadata.labels?.app === 'web')!;
    const body = await kube.ok('exec', '--node', p.spec.nodeName!, '--', 'curl', '-s', '-m', '3', `http://${p.status!.podIP}/`);
    const gateway = p.status!.podIP!.replace(/\.\d+$/, '.1');
    assert.equal(field(body, 'client')?.split(':')[0], gateway);
  });

  test("a pod's containers share its namespace: the client container reaches netexec on localhost; agnhost endpoints answer", async () => {
    let last = '';
    const log = await waitFor('the client container to reach the server', async () => {
      const r = await kube.run(['logs', 'duo', '-c', 'client', '--tail', '3']);
      last = r.stdout + r.stderr;
      return /^duo$/m.test(r.stdout) ? r.stdout : undefined;
    }).catch((e: Error) => assert.fail(`${e.message}; last log: ${JSON.stringify(last)}`));
    assert.match(log, /^duo$/m);
    const duo = pods.find((p) => p.metadata.name === 'duo')!;
    const web = pods.find((p) => p.metadata.labels?.app === 'web' && p.spec.nodeName !== duo.spec.nodeName)!;
    const echo = await kube.ok('exec', web.metadata.name, '--', 'curl', '-s', '-m', '3', `http://${duo.status!.podIP}:8080/echo?msg=hello`);
    assert.equal(echo, 'hello');
    const clientip = await kube.ok('exec', web.metadata.name, '--', 'curl', '-s', '-m', '3', `http://${duo.status!.podIP}:8080/clientip`);
    assert.equal(clientip.split(':')[0], web.status!.podIP);
    const udp = await kube.ok('exec', web.metadata.name, '--', 'sh', '-c', `echo hostname | nc -u -w1 ${duo.status!.podIP} 8081`);
    assert.equal(udp.trim(), 'duo');
    const usage = await kube.run(['logs', 'duo']);
    assert.match(usage.stderr, /a container name must be specified for pod duo, choose one of: \[server client\]/);
  });

  test("the bridge learns each pod's MAC behind its veth; ARP tables hold the pods and the gateway", async () => {
    const p = pods.find((x) => x.metadata.labels?.app === 'web')!;
    const [link] = JSON.parse(await kube.ok('exec', p.metadata.name, '--', 'ip', '-j', 'link', 'show', 'eth0'));
    const mac: string = link.address;
    const peerIndex: number = link.link_index;
    // Traffic from the node to the pod: ARP resolves the pod, the bridge learns its MAC.
    await kube.ok('exec', '--node', p.spec.nodeName!, '--', 'ping', '-c', '1', '-W', '2', p.status!.podIP!);
    const veths = JSON.parse(await kube.ok('exec', '--node', p.spec.nodeName!, '--', 'ip', '-j', 'link', 'show', 'master', 'cni0'));
    const hostEnd = veths.find((l: { ifindex: number }) => l.ifindex === peerIndex);
    assert.ok(hostEnd, 'the host end of the pod\'s veth pair is a port of cni0');
    const fdb = JSON.parse(await kube.ok('exec', '--node', p.spec.nodeName!, '--', 'bridge', '-j', 'fdb', 'show', 'br', 'cni0'));
    assert.ok(fdb.some((e: { mac: string; ifname: string }) => e.mac === mac && e.ifname === hostEnd.ifname), `FDB has ${mac} on ${hostEnd.ifname}`);
    const neigh = JSON.parse(await kube.ok('exec', '--node', p.spec.nodeName!, '--', 'ip', '-j', 'neigh', 'show', 'dev', 'cni0'));
    assert.ok(neigh.some((n: { dst: string; lladdr: string }) => n.dst === p.status!.podIP && n.lladdr === mac));
    const podNeigh = JSON.parse(await kube.ok('exec', p.metadata.name, '--', 'ip', '-j', 'neigh', 'show', 'dev', 'eth0'));
    const gateway = p.status!.podIP!.replace(/\.\d+$/, '.1');
    assert.ok(podNeigh.some((n: { dst: string }) => n.dst === gateway), 'the pod has resolved its gateway, cni0');

    const node = await kube.ok('describe', 'node', p.spec.nodeName!);
    assert.match(node, new RegExp(`${hostEnd.ifname}\\s+${hostEnd.ifindex}\\s+${hostEnd.address}\\s+if${link.ifindex} ${mac}\\s+default/${p.metadata.name}`));
    assert.match(node, new RegExp(`${mac}\\s+${hostEnd.ifname}\\s+pod default/${p.metadata.name}`));
    const pod = await kube.ok('describe', 'pod', p.metadata.name);
    assert.match(pod, new RegExp(`eth0 \\(in the pod\\):\\s+eth0@if${peerIndex}\\s+ifindex ${link.ifindex}\\s+mac ${mac}`));
    assert.match(pod, new RegExp(`veth \\(on the node\\):\\s+${hostEnd.ifname}@if${link.ifindex}`));
  });

  test('bad input changes nothing and says what is wrong', async () => {
    const before = await running();
    const bad = await kube.run(['apply', '-f', '-'], { input: `${MANIFEST.replace('replicas: 4', 'replicas: 6')}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: i, ports: [{containerPort: 99999}]}]}\n` });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /<stdin>: document 2 \(Pod "x"\): spec\.containers\[0\]\.ports\[0\]\.containerPort: Invalid value: 99999/);
    const inNs = await kube.run(['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: Pod\nmetadata: {name: y, namespace: nowhere}\nspec: {containers: [{name: c, image: i}]}\n' });
    assert.match(inNs.stderr, /namespaces "nowhere" not found/);
    const after = await running();
    assert.deepEqual(after.map((p) => p.metadata.uid).sort(), before.map((p) => p.metadata.uid).sort());
    assert.equal((await kube.json('get', 'deployment', 'web')).spec.replicas, 4);
    const missing = await kube.run(['exec', 'ghost', '--', 'true']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: pods "ghost" not found in namespace default\n');
    const again = await kube.run(['up']);
    assert.match(again.stderr, /already exists and is running/);
  });

  test('a deleted pod loses its namespace and IP; its Deployment replaces it', async () => {
    const victim = pods.find((p) => p.metadata.labels?.app === 'web')!;
    const nsBefore = await clusterNetns(cluster);
    assert.ok(nsBefore.some((n) => n.endsWith(`_default_${victim.metadata.name}`)));
    assert.match(await kube.ok('delete', 'pod', victim.metadata.name), new RegExp(`pod "${victim.metadata.name}" deleted`));
    assert.ok(!(await clusterNetns(cluster)).some((n) => n.endsWith(`_default_${victim.metadata.name}`)), 'the pod namespace is gone once delete returns');
    const ipam = join(stateDir, cluster, 'nodes', victim.spec.nodeName!, 'cni', 'networks', 'kubewire');
    assert.ok(!existsSync(join(ipam, victim.status!.podIP!)), 'host-local released the IP');
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '30s');
    pods = await waitFor('4 web pods Running', async () => {
      const now = await running();
      return now.filter((p) => p.metadata.labels?.app === 'web' && p.status?.phase === 'Running').length === 4 ? now : undefined;
    });
    assert.ok(!pods.some((p) => p.metadata.name === victim.metadata.name));
  });

  test("a pod whose network namespace is removed by hand is not ready within seconds (its endpoint leaves the Service), then gets a new sandbox", async () => {
    await kube.apply('apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n');
    const victim = pods.find((p) => p.metadata.labels?.app === 'web')!;
    const endpoint = async () => {
      const slices = await kube.json<{ items: Array<{ endpoints?: Array<{ addresses: string[]; conditions: { ready?: boolean } }> }> }>('get', 'endpointslices', '-l', 'kubernetes.io/service-name=web');
      return slices.items.flatMap((s) => s.endpoints ?? []).find((e) => e.addresses[0] === victim.status!.podIP);
    };
    await waitFor('the victim a ready endpoint', async () => (await endpoint())?.conditions.ready === true);
    // The window can be short (a sandbox is made again in well under a second): watched, not polled.
    const client = new ApiClient(join(stateDir, cluster, 'api.sock'));
    const seen: Array<{ at: number; ready: boolean }> = [];
    const sliceReady: boolean[] = [];
    const t0 = performance.now();
    const stopPods = await client.watch(resourceNamed('pods')!, 'default', { fieldSelector: `metadata.name=${victim.metadata.name}` }, (e) => {
      seen.push({ at: performance.now() - t0, ready: (e.object as Pod).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true });
    });
    const stopSlices = await client.watch(resourceNamed('endpointslices')!, 'default', { labelSelector: 'kubernetes.io/service-name=web' }, (e) => {
      const ep = (e.object as EndpointSlice).endpoints?.find((x) => x.targetRef?.name === victim.metadata.name);
      if (ep) sliceReady.push(ep.conditions.ready === true);
    });
    const netns = (await clusterNetns(cluster)).find((n) => n.endsWith(`_default_${victim.metadata.name}`))!;
    await run(['ip', 'netns', 'del', netns]);
    try {
      await waitFor('the pod reported not ready, then ready again', async () => {
        const down = seen.findIndex((s) => !s.ready);
        return down >= 0 && seen.slice(down).some((s) => s.ready);
      }, 30_000);
      await waitFor('its endpoint not ready, then ready again', async () => {
        const down = sliceReady.indexOf(false);
        return down >= 0 && sliceReady.slice(down).includes(true);
      }, 10_000);
    } finally {
      stopPods();
      stopSlices();
    }
    const notReadyAt = seen.find((s) => !s.ready)!.at;
    assert.ok(notReadyAt < 3000, `reported not ready ${notReadyAt.toFixed(0)} ms after its namespace went`);
    const ready = await waitFor('a new sandbox, ready again', async () => {
      const p = await kube.json<Pod>('get', 'pod', victim.metadata.name);
      return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
    }, 30_000);
    assert.ok((await clusterNetns(cluster)).some((n) => n.endsWith(`_default_${victim.metadata.name}`)), 'its namespace is back');
    assert.match(await kube.ok('exec', victim.metadata.name, '--', 'curl', '-s', '-m', '2', `http://${ready.status!.podIP}/`), /web-/);
    assert.match(await kube.ok('get', 'events', '--field-selector', `involvedObject.name=${victim.metadata.name}`), /SandboxChanged/);
    await kube.ok('delete', 'service', 'web');
  });

  test('a pod bound to a node that does not exist: Pending, a NodeNotFound Warning, and its deletion goes through', async () => {
    await kube.apply('apiVersion: v1\nkind: Pod\nmetadata: {name: stray}\nspec: {nodeName: no-such-node, containers: [{name: c, image: nginx}]}\n');
    await waitFor('the warning', async () => (await kube.ok('describe', 'pod', 'stray')).includes('NodeNotFound') || undefined);
    assert.match(await kube.ok('get', 'pod', 'stray'), /^stray\s+0\/1\s+Pending\s/m);
    assert.match(await kube.ok('describe', 'pod', 'stray'), /node "no-such-node" does not exist: the pod cannot start, and is deleted in 40 s/);
    assert.match(await kube.ok('delete', 'pod', 'stray', '--timeout', '10s'), /pod "stray" deleted/);
    assert.equal((await kube.run(['get', 'pod', 'stray'])).code, 1, 'gone, not Terminating forever');
  });

  test('a command that keeps failing restarts with a back-off (CrashLoopBackOff); its output is in its log', async () => {
    await kube.apply('apiVersion: v1\nkind: Pod\nmetadata: {name: crasher}\nspec:\n  containers: [{name: c, image: busybox, command: [sh, -c, "echo attempt; exit 3"]}]\n');
    const pod = await waitFor('two restarts', async () => {
      const p = await kube.json<Pod>('get', 'pod', 'crasher');
      return (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 2 ? p : undefined;
    });
    const cs = pod.status!.containerStatuses![0]!;
    assert.equal(cs.lastState?.terminated?.exitCode, 3);
    assert.match(await kube.ok('logs', 'crasher'), /^attempt\nattempt\n/);
    assert.match(await kube.ok('get', 'pod', 'crasher'), /crasher\s+0\/1\s+(CrashLoopBackOff|Running)\s+[2-9]/);
    // The story in Events, as kubectl describe tells it.
    const described = await kube.ok('describe', 'pod', 'crasher');
    assert.match(described, /Normal\s+Scheduled\s+.*default-scheduler\s+Successfully assigned default\/crasher to /);
    assert.match(described, /Normal\s+Started\s+\S+ \(x[2-9]\d* over \S+\)\s+kubelet\s+Started container c/);
    assert.match(described, /Warning\s+BackOff\s+.*kubelet\s+Back-off restarting failed container c in pod crasher/);
    assert.match(await kube.ok('get', 'events'), /SuccessfulCreate\s+replicaset\/web-[a-z0-9]+\s+Created pod: web-/);
    assert.match(await kube.ok('get', 'events'), /ScalingReplicaSet\s+deployment\/web\s+Scaled up replica set web-/);
    await kube.ok('delete', 'pod', 'crasher');
  });

  test('a new template rolls the Deployment over to new pods', async () => {
    const before = (await running()).filter((p) => p.metadata.labels?.app === 'web');
    await kube.apply(MANIFEST.replace('image: nginx', 'image: nginx:1.27'));
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '60s');
    pods = await waitFor('only new web pods', async () => {
      const now = await running();
      const web = now.filter((p) => p.metadata.labels?.app === 'web');
      return web.length === 4 && web.every((p) => p.status?.phase === 'Running' && !before.some((b) => b.metadata.uid === p.metadata.uid)) ? now : undefined;
    });
    const hashes = new Set(pods.filter((p) => p.metadata.labels?.app === 'web').map((p) => p.metadata.labels!['pod-template-hash']));
    assert.equal(hashes.size, 1);
    assert.ok(!hashes.has(before[0]!.metadata.labels!['pod-template-hash']!));
  });

  test('rollout history, undo and restart, through ReplicaSets, as kubectl does them', async () => {
    assert.match(await kube.ok('rollout', 'history', 'deployment/web'), /^REVISION {2}CHANGE-CAUSE\n1 {9}<none>\n2 {9}<none>\n/m);
    assert.equal(await kube.ok('rollout', 'undo', 'deployment/web'), 'deployment.apps/web rolled back\n');
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '60s');
    const image = async () => (await kube.json<Deployment>('get', 'deployment', 'web')).spec.template.spec.containers[0]!.image;
    assert.equal(await image(), 'nginx', 'back to the first template');
    assert.match(await kube.ok('get', 'replicasets'), /^web-\S+\s+4\s+4\s+4\s+/m);
    assert.equal(await kube.ok('rollout', 'restart', 'deployment/web'), 'deployment.apps/web restarted\n');
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '60s');
    assert.match(await kube.ok('rollout', 'history', 'deployment/web'), /^4 {9}<none>$/m, 'undo made revision 1 the third, restart the fourth');
    // The tests after this one use the pods as they are now.
    const [newest] = (await kube.json<{ items: Array<{ metadata: { labels: Record<string, string>; annotations: Record<string, string> } }> }>('get', 'replicasets')).items.filter((rs) => rs.metadata.annotations['deployment.kubernetes.io/revision'] === '4');
    pods = await waitFor('only the restarted web pods', async () => {
      const now = await running();
      const web = now.filter((p) => p.metadata.labels?.app === 'web');
      return web.length === 4 && web.every((p) => p.status?.phase === 'Running' && p.metadata.labels?.['pod-template-hash'] === newest!.metadata.labels['pod-template-hash']) ? now : undefined;
    }, 30_000);
  });

  test('deleting a namespace removes its pods (namespaces, IPs) and then itself', async () => {
    await kube.apply('apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: cart, namespace: shop}\nspec: {containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}\n');
    await kube.ok('wait', '--for=condition=Ready', 'pod/cart', '-n', 'shop', '--timeout', '30s');
    assert.ok((await clusterNetns(cluster)).some((n) => n.endsWith('_shop_cart')));
    await kube.ok('delete', 'namespace', 'shop', '--timeout', '30s');
    assert.ok(!(await clusterNetns(cluster)).some((n) => n.endsWith('_shop_cart')));
    assert.match((await kube.run(['get', 'namespace', 'shop'])).stderr, /namespaces "shop" not found/);
  });

  test("a node's workload host killed: the daemon starts it again and every pod serves again", async () => {
    const p = pods.find((x) => x.metadata.labels?.app === 'web')!;
    const pidFile = join(stateDir, cluster, 'nodes', p.spec.nodeName!, 'workloads.pid');
    const hostPid = Number(readFileSync(pidFile, 'utf8'));
    process.kill(hostPid, 'SIGKILL');
    const body = await waitFor('the pod to serve again', async () => {
      const r = await kube.run(['exec', '--node', p.spec.nodeName!, '--', 'curl', '-s', '-m', '1', `http://${p.status!.podIP}/`]);
      return field(r.stdout, 'pod') === p.metadata.name ? r.stdout : undefined;
    }, 20_000);
    assert.equal(field(body, 'pod IP'), p.status!.podIP);
    assert.notEqual(Number(readFileSync(pidFile, 'utf8')), hostPid);
  });

  test('kill -9 of the daemon: pods keep serving; `up` restarts it; no pod lost, no IP twice, no namespace leaked', async () => {
    const daemonPid = Number(readFileSync(join(stateDir, cluster, 'daemon.pid'), 'utf8'));
    process.kill(daemonPid, 'SIGKILL');
    await waitFor('the daemon to die', async () => ended(daemonPid) || undefined);
    const p = pods.find((x) => x.metadata.labels?.app === 'web')!;
    const body = await kube.ok('exec', '--node', p.spec.nodeName!, '--', 'curl', '-s', '-m', '3', `http://${p.status!.podIP}/`);
    assert.equal(field(body, 'pod'), p.metadata.name, 'the data plane does not need the control plane');
    const down = await kube.run(['get', 'pods']);
    assert.match(down.stderr, /daemon of cluster .* is not running \(kubewire up --cluster .* starts it again\)/);

    // What a crash in the middle of a pod's setup leaves: a pod namespace and an IP that no pod owns.
    const node1 = `${cluster}-node-1`;
    const ghostNs = `kw_${cluster}_pod_${node1}_default_ghost`;
    await run(['ip', 'netns', 'add', ghostNs]);
    const ipam = join(stateDir, cluster, 'nodes', node1, 'cni', 'networks', 'kubewire');
    const ghostIP = pods.find((x) => x.spec.nodeName === node1)!.status!.podIP!.replace(/\.\d+$/, '.250');
    writeFileSync(join(ipam, ghostIP), 'ghost-container-id\r\neth0');

    const up = await kube.ok('up');
    assert.match(up, /daemon restarted/);
    assert.ok(!(await clusterNetns(cluster)).includes(ghostNs), 'the leftover pod namespace is removed');
    assert.ok(!existsSync(join(ipam, ghostIP)), 'CNI GC released the leftover IP');
    const after = await running();
    assert.deepEqual(after.map((x) => `${x.metadata.uid} ${x.status?.podIP}`).sort(), pods.map((x) => `${x.metadata.uid} ${x.status?.podIP}`).sort());
    assert.ok(after.every((x) => x.status?.phase === 'Running'));
    const podNs = (await clusterNetns(cluster)).filter((n) => n.includes('_pod_') && n.includes('_default_'));
    assert.equal(podNs.length, after.length, 'one namespace per pod, none leaked');
    // The adopted command container still runs, and new pods get fresh IPs.
    assert.match(await kube.ok('logs', 'duo', '-c', 'client', '--tail', '1'), /duo/);
    await kube.ok('scale', 'deployment/web', '--replicas=6');
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '30s');
    const scaled = await running();
    assert.equal(scaled.length, 7);
    assert.equal(new Set(scaled.map((x) => x.status?.podIP)).size, 7, 'no IP twice');
  });

  test('down removes every namespace, process and file, and the root namespace is as before', async () => {
    const hostPids = readdirSync(join(stateDir, cluster, 'nodes')).map((n) => join(stateDir, cluster, 'nodes', n, 'workloads.pid')).filter((f) => existsSync(f));
    assert.ok(hostPids.length > 0, 'the nodes with built-in pods run their workload hosts');
    const procs = [join(stateDir, cluster, 'daemon.pid'), ...hostPids].map((f) => Number(readFileSync(f, 'utf8')));
    const out = await kube.ok('down');
    assert.match(out, /cluster kwp\d+ removed \(\d+ namespaces\)/);
    assert.deepEqual(await clusterNetns(cluster), []);
    assert.ok(!existsSync(join(stateDir, cluster)));
    for (const pid of procs) assert.ok(ended(pid), `process ${pid} ended`);
    assert.deepEqual(readdirSync(stateDir), []);
    assert.equal(await rootState(), rootBefore);
    const again = await kube.run(['down']);
    assert.match(again.stderr, /cluster "kwp\d+" does not exist/);
  });
});
