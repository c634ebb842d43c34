// Services on a running cluster, with real traffic (kube-proxy's iptables mode): a
// ClusterIP load-balances over every endpoint, from pods (keeping the client's pod IP) and
// from the node itself; a NodePort answers at every node from outside; a pod reaches
// itself through its own Service (hairpin); a Service without endpoints refuses at once;
// endpoint changes are honoured within about a second; a flushed nat table comes back.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Pod, Service } from '../src/api/types.ts';
import { linux } from '../src/dataplane/linux/host.ts';
import { runCaptured } from '../src/supervisor/supervisor.ts';
import { serviceChain } from '../src/proxy/iptables/names.ts';
import { NOT_ROOT } from './helpers.ts';
import { field, Kube, waitFor } from './kube.ts';
import { checkPolicyThroughIpvs } from './netpol-ipvs-check.ts';

const MANIFEST = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.47
        args: [netexec, --http-port=8080, --udp-port=8081]
        ports: [{containerPort: 8080, name: http}, {containerPort: 8081, name: dns, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-udp}
spec:
  selector: {app: echo}
  ports: [{name: dns, port: 53, targetPort: dns, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: echo}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {app: solo}}
spec:
  nodeName: NODE1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.47
    args: [netexec, --http-port=8080]
---
apiVersion: v1
kind: Service
metadata: {name: solo-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: solo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30082}]
---
apiVersion: v1
kind: Service
metadata: {name: solo-internal}
spec:
  internalTrafficPolicy: Local
  selector: {app: solo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: solo-ext}
spec:
  externalIPs: [192.0.2.10]
  selector: {app: solo}
  ports: [{port: 80, targetPort: 8080}]
`;

/** Latency limits are multiplied by this where everything runs slower (a user-mode Linux kernel). */
const SLOWDOWN = Number(process.env.KUBEWIRE_TEST_SLOWDOWN ?? 1);
/** The modes to run (test/uml.test.ts runs this file with ipvs against a cluster in a UML kernel). */
const MODES = (process.env.KUBEWIRE_TEST_PROXY_MODES ?? 'iptables,nftables').split(',') as Array<'iptables' | 'nftables' | 'ipvs'>;
/** `uml`: the cluster runs in a kernel of its own (up --kernel uml), driven from here as a user drives one. */
const KERNEL = process.env.KUBEWIRE_TEST_KERNEL === 'uml' ? 'uml' : 'host';

for (const mode of MODES) describe(`Services, ${mode} mode`, { skip: NOT_ROOT }, () => {
  const cluster = `kws${process.pid % 100000}${mode[0]}`;
  let stateDir: string;
  let kube: Kube;
  let pods: Pod[];
  let vip: string;
  /** What `up` printed (in a kernel of its own, the session's checks read it). */
  let upOut = '';
  const node = (i: number) => `${cluster}-node-${i}`;
  /** Runs curl in the pod's namespace N times in one process; returns the answers. */
  const curlMany = async (where: string[], url: string, n: number): Promise<string[]> => {
    const out = await kube.ok('exec', ...where, '--', 'sh', '-c', `for i in $(seq ${n}); do curl -s -m 2 ${url}; echo ===; done`);
    return out.split('===\n').filter((s) => s.trim());
  };

  before(async () => {
    stateDir = mkdtempSync(join(process.env.KUBEWIRE_TEST_SCRATCH ?? tmpdir(), 'kwt-svc-'));
    kube = new Kube(cluster, stateDir);
    const up = await kube.run(['up', '--proxy-mode', mode, ...(KERNEL === 'uml' ? ['--kernel', 'uml'] : [])], { timeoutMs: 240_000 });
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    upOut = up.stdout;
    await kube.apply(MANIFEST.replace('NODE1', node(1)));
    const timeout = `${30 * SLOWDOWN}s`;
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', timeout);
    await kube.ok('rollout', 'status', 'deployment/echo', '--timeout', timeout);
    await kube.ok('wait', '--for=condition=Ready', 'pod/solo', '--timeout', timeout);
    pods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items;
    vip = (await kube.json<Service>('get', 'service', 'web')).spec.clusterIP!;
  });
  after(async () => {
    await kube.run(['down']);
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('the Service gets a ClusterIP from the service CIDR and an EndpointSlice with every pod (named targetPort resolved)', async () => {
    assert.match(vip, /^10\.(9[6-9]|10\d|11[01])\./);
    const slices = (await kube.json('get', 'endpointslices', '-l', 'kubernetes.io/service-name=web')).items;
    assert.equal(slices.length, 1);
    assert.deepEqual(slices[0].ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.deepEqual(slices[0].endpoints.map((e: { addresses: string[] }) => e.addresses[0]).sort(), pods.map((p) => p.status!.podIP).sort());
    assert.ok(slices[0].endpoints.every((e: { conditions: { ready: boolean } }) => e.conditions.ready));
    const np = await kube.json<Service>('get', 'service', 'web-np');
    assert.equal(np.spec.ports![0]!.nodePort, 30080);
    const names = await kube.ok('get', 'svc,endpointslices', '-o', 'name');
    assert.match(names, /^service\/web$/m);
    assert.match(names, /^endpointslice\.discovery\.k8s\.io\/web-\w+$/m);
    assert.match(await kube.ok('get', 'all'), /^service\/web-np\s+NodePort\s+\S+\s+<none>\s+80:30080\/TCP/m);
  });

  test('ClusterIP from a pod: every endpoint answers, and sees the client pod\'s own IP', async () => {
    const client = pods[0]!;
    const answers = await curlMany([client.metadata.name], `http://${vip}/`, 30);
    assert.equal(answers.length, 30);
    const seen = new Set(answers.map((a) => field(a, 'pod')));
    assert.deepEqual([...seen].sort(), pods.map((p) => p.metadata.name).sort(), 'all three endpoints reached');
    for (const a of answers) {
      if (field(a, 'pod') !== client.metadata.name) assert.equal(field(a, 'client')?.split(':')[0], client.status!.podIP, 'no NAT between pods');
      // Hairpin: a pod reaching itself through its Service is masqueraded so the reply comes back through the bridge.
      else assert.equal(field(a, 'client')?.split(':')[0], client.status!.podIP!.replace(/\.\d+$/, '.1'));
    }
  });

  test('ClusterIP from the node itself', async () => {
    const answers = await curlMany(['--node', node(1)], `http://${vip}/`, 12);
    assert.ok(answers.every((a) => pods.some((p) => p.metadata.name === field(a, 'pod'))));
  });

  test('NodePort from outside the cluster at every node IP', async () => {
    for (const ip of ['172.18.0.11', '172.18.0.12']) {
      const a = await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '3', `http://${ip}:30080/`);
      assert.ok(pods.some((p) => p.metadata.name === field(a, 'pod')), a);
      // externalTrafficPolicy Cluster masquerades: the pod sees the node (its eth0 or cni0 address), not the client.
      assert.notEqual(field(a, 'client')?.split(':')[0], '172.18.0.200');
    }
  });

  test('a Service without endpoints refuses at once (REJECT), it does not time out', async () => {
    const empty = (await kube.json<Service>('get', 'service', 'empty')).spec.clusterIP!;
    // curl's own clock: what exec costs to start (seconds inside UML) is not the Service's.
    const r = await kube.run(['exec', pods[0]!.metadata.name, '--', 'curl', '-s', '-m', '5', '-w', '%{time_total}', `http://${empty}/`]);
    assert.equal(r.code, 7, 'curl: connection refused');
    assert.ok(Number(r.stdout) < 2 * SLOWDOWN, `refused after ${r.stdout} s`);
  });

  test("the node holds the Service's rules: upstream's chains (iptables) or map elements (nftables)", async () => {
    if (mode === 'iptables') {
      const save = await kube.ok('exec', '--node', node(1), '--', 'iptables-save', '-t', 'nat');
      const chain = serviceChain('default/web:http', 'tcp');
      // iptables-save prints matches in its own order (-d, -p, then modules).
      assert.match(save, new RegExp(`-A KUBE-SERVICES -d ${vip.replace(/\./g, '\\.')}/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j ${chain}`));
      assert.equal(save.split('\n').filter((l) => l.startsWith(`-A ${chain} `) && l.includes('-j KUBE-SEP-')).length, 3);
      assert.match(save, /-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES/);
    } else if (mode === 'ipvs') {
      const ipvs = await kube.ok('exec', '--node', node(1), '--', 'ipvsadm', '-Ln');
      const block = ipvs.split(/\n(?=TCP|UDP)/).find((b) => b.startsWith(`TCP  ${vip}:80 rr`));
      assert.ok(block, ipvs);
      assert.equal(block!.split('\n').filter((l) => /-> 10\.244\.\d+\.\d+:8080\s+Masq/.test(l)).length, 3, block);
      assert.match(await kube.ok('exec', '--node', node(1), '--', 'ip', '-br', 'addr', 'show', 'kube-ipvs0'), new RegExp(`${vip.replace(/\./g, '\\.')}/32`));
    } else {
      const table = await kube.ok('exec', '--node', node(1), '--', 'nft', 'list', 'table', 'ip', 'kubewire');
      assert.match(table, new RegExp(`${vip.replace(/\./g, '\\.')} \\. tcp \\. 80 : goto group-3`));
      for (let i = 0; i < 3; i++) assert.match(table, new RegExp(`${vip.replace(/\./g, '\\.')} \\. tcp \\. 80 \\. ${i} : 10\\.244\\.\\d+\\.\\d+ \\. 8080`));
      assert.ok(!/chain endpoint-/.test(table.replace(/chain endpoint-\w+-default\/sticky\/.*/g, '')), 'no chain per endpoint but for affinity');
      const iptables = await kube.ok('exec', '--node', node(1), '--', 'iptables-save', '-t', 'nat');
      assert.ok(!iptables.includes('KUBE-SVC-'), 'nftables mode leaves iptables alone');
    }
  });

  test('describe service shows the VIP, endpoints by node and the chains that carry it; metrics and healthz as kube-proxy serves them', async () => {
    const text = await kube.ok('describe', 'service', 'web-np');
    assert.match(text, /^Type:\s+NodePort$/m);
    assert.match(text, /^NodePort:\s+<unset>\s+30080\/TCP$/m);
    for (const p of pods) assert.match(text, new RegExp(`${p.spec.nodeName}: .*${p.status!.podIP!.replace(/\./g, '\\.')} ${p.metadata.name}`));
    if (mode === 'iptables') {
      assert.match(text, /-A KUBE-NODEPORTS .*--dport 30080 -j KUBE-EXT-/);
      assert.equal(text.split('\n').filter((l) => /-j DNAT --to-destination/.test(l)).length, 3);
    } else if (mode === 'ipvs') {
      assert.match(text, /-A -t 172\.18\.0\.11:30080 -s rr/);
      assert.equal(text.split('\n').filter((l) => /-a -t 172\.18\.0\.11:30080 -r 10\.244\.\d+\.\d+:8080 -m/.test(l)).length, 3, text);
    } else {
      assert.match(text, /tcp \. 30080 : goto external-\w+-default\/web-np\/tcp\/80/);
      assert.match(text, /dnat ip to numgen random mod 3 map/);
    }

    const metrics = await kube.ok('exec', '--node', node(1), '--', 'curl', '-s', 'http://127.0.0.1:10249/metrics');
    assert.ok(Number(metrics.match(/^kubeproxy_sync_proxy_rules_last_timestamp_seconds (\S+)$/m)?.[1]) > Date.now() / 1000 - 600);
    if (mode === 'iptables') assert.ok(Number(metrics.match(/^kubeproxy_sync_proxy_rules_iptables_total\{table="nat"\} (\d+)$/m)?.[1]) > 10);
    else if (mode === 'ipvs') assert.ok(Number(metrics.match(/^kubewire_proxy_objects\{kind="real-servers"\} (\d+)$/m)?.[1]) >= 3);
    else assert.ok(Number(metrics.match(/^kubewire_proxy_objects\{kind="backends"\} (\d+)$/m)?.[1]) >= 3);
    assert.match(metrics, /^kubeproxy_sync_proxy_rules_duration_seconds_count [1-9]/m);
    const health = await kube.ok('exec', '--node', node(2), '--', 'curl', '-s', '-w', ' %{http_code}', 'http://127.0.0.1:10256/healthz');
    // kube-proxy's body, byte for byte in shape: Go's time strings, a space after the colon before nodeEligible.
    assert.match(health, /^\{"lastUpdated": "[^"]+ \+0000 UTC m=\+[\d.]+","currentTime": "[^"]+", "nodeEligible": true\} 200$/);
    // As kube-proxy binds them: metrics on the node's loopback only, healthz on every address.
    const nodeIP = (await kube.json<{ status: { addresses: Array<{ type: string; address: string }> } }>('get', 'node', node(1))).status.addresses.find((a) => a.type === 'InternalIP')!.address;
    const fromOutside = await kube.run(['exec', '--external', '--', 'curl', '-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${nodeIP}:10249/metrics`]);
    assert.equal(fromOutside.stdout, '000', 'metrics refused from outside the node');
    assert.equal(await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${nodeIP}:10256/healthz`), '200', 'healthz answers from outside');
  });

  test('endpoints removed and added are honoured within about a second', async () => {
    await kube.ok('scale', 'deployment/web', '--replicas=0');
    await waitFor('the ClusterIP to refuse', async () => {
      const r = await kube.run(['exec', '--node', node(1), '--', 'curl', '-s', '-m', '1', `http://${vip}/`]);
      return r.code === 7 ? true : undefined;
    });
    await kube.ok('scale', 'deployment/web', '--replicas=2');
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '30s');
    const t0 = performance.now();
    await waitFor('the ClusterIP to answer', async () => {
      const r = await kube.run(['exec', '--node', node(1), '--', 'curl', '-s', '-m', '1', `http://${vip}/`]);
      return r.code === 0 && field(r.stdout, 'pod') ? true : undefined;
    });
    assert.ok(performance.now() - t0 < 3000 * SLOWDOWN, 'served within about a second of the pods being ready');
    pods = (await kube.json<{ items: Pod[] }>('get', 'pods', '-l', 'app=web')).items.filter((p) => !p.metadata.deletionTimestamp);
  });

  test('rules flushed behind its back come back by themselves', async () => {
    // As a user would, from the node (where `iptables` is the cluster's: legacy here); the
    // request in the same shell, right after the flush, before the proxy's next check.
    const flush = { iptables: 'iptables -t nat -F && iptables -t nat -X', nftables: 'nft delete table ip kubewire', ipvs: 'ipvsadm -C' }[mode];
    // (Answered by a pod, not just answered: in IPVS mode the VIP is a local address of the
    // node, and without its virtual server the node's ingress controller on :80 answers it.)
    const r = await kube.run(['exec', '--node', node(1), '--', 'sh', '-c', `${flush} && curl -s -m 1 http://${vip}/`]);
    assert.ok(r.code !== 0 || !field(r.stdout, 'pod'), 'broken right after the flush');
    await waitFor('the rules to come back', async () => {
      const again = await kube.run(['exec', '--node', node(1), '--', 'curl', '-s', '-m', '1', `http://${vip}/`]);
      return again.code === 0 && field(again.stdout, 'pod') ? true : undefined;
    }, 15_000 * SLOWDOWN);
  });

  const clusterIP = async (name: string) => (await kube.json<Service>('get', 'service', name)).spec.clusterIP!;

  test('sessionAffinity ClientIP: one client keeps its endpoint', async () => {
    const ip = await clusterIP('sticky');
    const answers = await kube.ok('exec', pods[0]!.metadata.name, '--', 'sh', '-c', `for i in $(seq 10); do curl -s -m 2 http://${ip}/hostname; echo; done`);
    const names = new Set(answers.trim().split('\n'));
    assert.equal(names.size, 1, answers);
    assert.match([...names][0]!, /^echo-/);
  });

  // A node without a local endpoint: the rule-based modes drop (curl times out, 28); IPVS answers
  // a virtual server that has no real server with ICMP port unreachable (ip_vs_leave), so the
  // client is refused at once (7), as with kube-proxy's IPVS mode.
  const noLocalEndpoint = mode === 'ipvs' ? 7 : 28;

  test('externalTrafficPolicy Local: the client IP is kept at a node with an endpoint; a node without one drops', async () => {
    const at1 = await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '3', 'http://172.18.0.11:30082/clientip');
    assert.equal(at1.split(':')[0], '172.18.0.200', 'no masquerade: the pod sees the outside client');
    const at2 = await kube.run(['exec', '--external', '--', 'curl', '-s', '-m', '1', 'http://172.18.0.12:30082/clientip']);
    assert.equal(at2.code, noLocalEndpoint, 'not forwarded to another node');
  });

  test('internalTrafficPolicy Local: only a node with a local endpoint serves it', async () => {
    const ip = await clusterIP('solo-internal');
    assert.equal(await kube.ok('exec', '--node', node(1), '--', 'curl', '-s', '-m', '2', `http://${ip}/hostname`), 'solo');
    assert.equal((await kube.run(['exec', '--node', node(2), '--', 'curl', '-s', '-m', '1', `http://${ip}/hostname`])).code, noLocalEndpoint);
  });

  test('externalIPs: traffic routed to any node for the external IP reaches the Service', async () => {
    await kube.ok('exec', '--external', '--', 'ip', 'route', 'replace', '192.0.2.10/32', 'via', '172.18.0.12');
    assert.equal(await kube.ok('exec', '--external', '--', 'curl', '-s', '-m', '3', 'http://192.0.2.10/hostname'), 'solo');
  });

  test('UDP: a client keeps its endpoint while it lives; when it goes, the stale conntrack entry goes too', async () => {
    const ip = await clusterIP('echo-udp');
    const client = pods[0]!.metadata.name;
    // The same source port every time: one conntrack entry, one endpoint.
    const ask = async () => (await kube.run(['exec', client, '--', 'sh', '-c', `echo hostname | nc -u -w1 -p 40000 ${ip} 53`])).stdout.trim();
    const first = await waitFor('a UDP answer', async () => (await ask()) || undefined);
    assert.match(first, /^echo-/);
    assert.equal(await ask(), first);
    await kube.ok('delete', 'pod', first, '--grace-period=0', '--force');
    const next = await waitFor('an answer from another endpoint', async () => {
      const a = await ask();
      return a && a !== first ? a : undefined;
    }, 10_000);
    assert.match(next, /^echo-/);
  });

  test('a Service without a selector uses the EndpointSlice written by hand; a headless Service gets slices and no VIP', async () => {
    const solo = await kube.json<Pod>('get', 'pod', 'solo');
    await kube.apply(`apiVersion: v1
kind: Service
metadata: {name: manual}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  labels: {kubernetes.io/service-name: manual}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [${solo.status!.podIP}], conditions: {ready: true}, nodeName: ${solo.spec.nodeName}}]
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`);
    const ip = await clusterIP('manual');
    const answer = await waitFor('the hand-written endpoint to serve', async () => {
      const r = await kube.run(['exec', '--node', node(2), '--', 'curl', '-s', '-m', '1', `http://${ip}/hostname`]);
      return r.code === 0 ? r.stdout : undefined;
    }, 10_000);
    assert.equal(answer, 'solo');
    assert.equal((await kube.json('get', 'endpointslices', '-l', 'kubernetes.io/service-name=manual')).items.length, 1, 'the controller leaves hand-written slices alone');
    assert.equal(await clusterIP('headless'), 'None');
    const slices = (await kube.json('get', 'endpointslices', '-l', 'kubernetes.io/service-name=headless')).items;
    assert.equal(slices[0].endpoints.length, pods.length);
  });

  test('the proxy restarted (daemon killed, then up): the rules stay in the kernel the whole time', async () => {
    if (KERNEL === 'uml') await kube.ok('exec', '--node', node(1), '--', 'pkill', '-KILL', '-f', `kubewire.js daemon --cluster ${cluster}$`); // its processes are the guest's
    else process.kill(Number(readFileSync(join(stateDir, cluster, 'daemon.pid'), 'utf8')), 'SIGKILL');
    for (let i = 0; i < 3; i++) {
      const r = await kube.run(['exec', '--node', node(1), '--', 'curl', '-s', '-m', '2', `http://${vip}/`]);
      assert.equal(r.code, 0, 'served while the proxy is down');
    }
    await kube.ok('up');
    const r = await kube.run(['exec', '--node', node(1), '--', 'curl', '-s', '-m', '2', `http://${vip}/`]);
    assert.equal(r.code, 0);
    await waitFor('the restarted proxy to sync', async () => {
      const m = await kube.ok('exec', '--node', node(1), '--', 'curl', '-s', 'http://127.0.0.1:10249/metrics');
      return /^kubeproxy_sync_proxy_rules_duration_seconds_count [1-9]/m.test(m) ? m : undefined;
    });
  });

  // A user's session with `up --kernel uml`, on this suite's cluster rather than a kernel booted for it (test/uml.test.ts).
  test('in a kernel of its own: up says so, none of its namespaces is the host\'s, its console in its log; trace through IPVS leaves no rule; exit statuses, logs and errors come back', { skip: KERNEL === 'uml' ? false : 'only for a cluster in its own kernel' }, async () => {
    assert.match(upOut, /kernel booted in [\d.]+ s/);
    assert.match(upOut, new RegExp(`cluster ${cluster} is up in its own kernel`));
    assert.deepEqual((await linux.listNetns()).filter((n) => n.includes(cluster)), [], "none of its namespaces is the host's");
    assert.match(readFileSync(join(stateDir, cluster, 'kernel.log'), 'utf8'), /Linux version 6\./, "the kernel's console is in the cluster's log");
    // kubewire trace in a kernel without nf_tables: TRACE in raw, mangle's chains as observation points, IPVS's choice.
    const traced = JSON.parse(await kube.ok('trace', `pod/${pods[0]!.metadata.name}`, 'service/web', '-o', 'json'));
    assert.equal(traced.verdict, 'delivered', traced.reason);
    const ipvsHop = traced.hops.find((h: { kind: string }) => h.kind === 'ipvs');
    assert.match(ipvsHop?.detail ?? '', new RegExp(`IPVS virtual server ${vip.replace(/\./g, '\\.')}:80 → real server 10\\.244\\.\\d+\\.\\d+:8080`));
    assert.ok(pods.some((p) => `default/${p.metadata.name}` === traced.destination.pod), `delivered to a web pod: ${traced.destination.pod}`);
    const outside = JSON.parse(await kube.ok('trace', 'external', '172.18.0.11:30080', '-o', 'json'));
    assert.equal(outside.verdict, 'delivered', outside.reason);
    assert.ok(outside.hops.some((h: { kind: string }) => h.kind === 'ipvs'), 'the NodePort is an IPVS virtual server too');
    assert.doesNotMatch(await kube.ok('exec', '--node', node(1), '--', 'iptables-legacy-save'), /KUBEWIRE-TRACE/, 'the trace leaves no rule');
    assert.equal((await kube.run(['exec', pods[0]!.metadata.name, '--', 'sh', '-c', 'exit 7'])).code, 7, 'the exit status comes back');
    assert.match(await kube.ok('logs', pods[0]!.metadata.name), /kubewire built-in/);
    const bad = await kube.run(['get', 'pods', 'nope']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not found/, 'errors come back as the CLI prints them');
    // NetworkPolicy through IPVS (issue 31; the UML kernel's iptables + ipset backend), on this cluster rather than one booted for it.
    await checkPolicyThroughIpvs(kube, { pods, clusterIP: vip, nodes: [node(1), node(2)], nodePort: '172.18.0.11:30080' });
  });

  test('bad Services are refused: a taken or out-of-range clusterIP or nodePort, an unknown protocol', async () => {
    const bad = async (spec: string) => (await kube.run(['apply', '-f', '-'], { input: `apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: ${spec}\n` })).stderr;
    assert.match(await bad(`{clusterIP: ${vip}, ports: [{port: 80}]}`), /spec\.clusterIPs: Invalid value: \[".*"\]: failed to allocate IP .*: provided IP is already allocated/);
    assert.match(await bad('{clusterIP: 192.168.1.1, ports: [{port: 80}]}'), /the provided IP \(192\.168\.1\.1\) is not in the valid range\. The range of valid IPs is 10\.96\.0\.0\/12/);
    assert.match(await bad('{type: NodePort, ports: [{port: 80, nodePort: 30080}]}'), /spec\.ports\[0\]\.nodePort: Invalid value: 30080: provided port is already allocated/);
    assert.match(await bad('{type: NodePort, ports: [{port: 80, nodePort: 40000}]}'), /provided port is not in the valid range\. The range of valid ports is 30000-32767/);
    assert.match(await bad('{ports: [{port: 80, protocol: ICMP}]}'), /spec\.ports\[0\]\.protocol: Unsupported value: "ICMP"/);
    assert.match((await kube.run(['get', 'service', 'bad'])).stderr, /not found/);
  });

  test('down powers its kernel off and leaves no file and no process of it', { skip: KERNEL === 'uml' ? false : 'only for a cluster in its own kernel' }, async () => {
    const down = await kube.run(['down']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /its kernel powered off/);
    assert.equal(existsSync(join(stateDir, cluster)), false, 'its host directory is gone');
    assert.equal((await runCaptured(['pgrep', '-f', join(stateDir, cluster)])).stdout.trim(), '', 'no process of its kernel is left');
  });
});
