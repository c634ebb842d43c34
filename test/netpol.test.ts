// NetworkPolicy end to end on the real kernel (root): upstream's model, namespaces x, y, z
// (labelled ns=<name>) × pods a, b, c (labelled pod=<name>; x/a, x/c, y/b, z/a, z/c on
// node-1, the rest on node-2, so both same-node and cross-node pairs are probed), each
// answering on TCP and UDP 80 and 81 (ports named serve-80-tcp...), a Service s-<ns>-<pod>
// per pod. Each case applies policies, then probes the whole 9 × 9 matrix from inside the
// pods (one prober process per source pod, every target at once) until it equals what the
// pure model (src/netpol/model.ts, itself checked against upstream's tables in
// test/netpol-model.test.ts) computes, within a bound.
//
// Two clusters: nftables proxy mode with the policy's own nftables table, and iptables proxy
// mode on legacy iptables, whose node policy is the iptables + ipset backend (what a kernel
// without nf_tables, as the user-mode Linux one, gets). KUBEWIRE_TEST_NETPOL_MODE picks the
// crossing mode (routed by default; vxlan and vpc work the same way).

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Pod, Service } from '../src/api/types.ts';
import { podNetnsName } from '../src/cluster/plan.ts';
import { allowed, type NetworkPolicyObject, type PodInfo, type PolicyWorld, type Protocol } from '../src/netpol/model.ts';
import { NOT_ROOT } from './helpers.ts';
import { Kube, waitFor } from './kube.ts';

const NS = ['x', 'y', 'z'];
const PODS = ['a', 'b', 'c'];
const ON_NODE1 = new Set(['x/a', 'x/c', 'y/b', 'z/a', 'z/c']);
const IDS = NS.flatMap((n) => PODS.map((p) => `${n}/${p}`));
const CROSSING = (process.env.KUBEWIRE_TEST_NETPOL_MODE ?? 'routed') as 'routed' | 'host-gw' | 'vxlan' | 'vpc';
/** A blocked probe costs this long; an allowed one answers in a few ms. */
const PROBE_MS = 800;
/** A UDP answer comes from the node's workload host process, which a loaded machine can keep waiting. */
const UDP_PROBE_MS = 2000;

/**
 * A prober living in one pod's namespace: reads a JSON line of targets, probes them all at
 * once (TCP connects, UDP request/answer, DNS lookups) and writes a JSON line of results.
 * One per source pod for the whole file: a probe round costs no process start.
 */
const PROBER = `
const net = require('node:net'), dgram = require('node:dgram'), { Resolver } = require('node:dns').promises;
const tcp = (t, timeout) => new Promise((r) => { const s = net.connect({ host: t.host, port: t.port }); const done = (ok) => { s.destroy(); r(ok); }; s.setTimeout(timeout, () => done(false)); s.on('connect', () => done(true)); s.on('error', () => done(false)); });
const udp = (t, timeout) => new Promise((r) => { const s = dgram.createSocket('udp4'); const end = (ok) => { clearTimeout(timer); try { s.close(); } catch {} r(ok); }; const timer = setTimeout(() => end(false), timeout); s.on('message', () => end(true)); s.on('error', () => end(false)); s.send('hostname', t.port, t.host); });
const dns = (t, timeout) => { const res = new Resolver({ timeout, tries: 1 }); res.setServers([t.host]); return res.resolve4(t.name).then(() => true, () => false); };
require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const { targets, timeout } = JSON.parse(line);
  const v = await Promise.all(targets.map((t) => (t.proto === 'udp' ? udp(t, timeout) : t.proto === 'dns' ? dns(t, timeout) : tcp(t, timeout))));
  process.stdout.write(JSON.stringify(v) + '\\n');
});
process.stdin.on('end', () => process.exit(0));
`;

class Prober {
  private readonly child: ChildProcess;
  private buf = '';
  private waiting: Array<(v: boolean[]) => void> = [];

  constructor(netns: string) {
    this.child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', PROBER], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiting.shift()?.(JSON.parse(line) as boolean[]);
      }
    });
  }

  /** One round, answered in order; bounded (a prober that hangs fails the test). */
  probe(targets: object[], timeoutMs = PROBE_MS): Promise<boolean[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('prober did not answer within 15 s')), 15_000);
      this.waiting.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.child.stdin!.write(`${JSON.stringify({ targets, timeout: timeoutMs })}\n`);
    });
  }

  stop(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

function run(argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs }, (err, stdout, stderr) => (err ? reject(new Error(`${argv.slice(0, 4).join(' ')}: ${stderr || err.message}`)) : resolve(stdout))));
}

const podYaml = (cluster: string, ns: string, name: string, labels: Record<string, string> = { pod: name }) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}, labels: {${Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ')}}}
spec:
  nodeName: ${cluster}-node-${ON_NODE1.has(`${ns}/${name}`) ? 1 : 2}
  containers:
  - name: cont
    image: kubewire/hello
    ports: [{name: serve-80-tcp, containerPort: 80}, {name: serve-81-tcp, containerPort: 81}, {name: serve-80-udp, containerPort: 80, protocol: UDP}, {name: serve-81-udp, containerPort: 81, protocol: UDP}]
`;

const model = () =>
  [
    ...NS.map((n) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${n}, labels: {ns: ${n}}}\n`),
    ...NS.flatMap((n) => PODS.map((p) => `apiVersion: v1\nkind: Service\nmetadata: {name: s-${n}-${p}, namespace: ${n}}\nspec:\n  selector: {pod: ${p}}\n  ports: [{name: http, port: 80, targetPort: 80}]\n`)),
  ].join('---\n');

const np = (ns: string, name: string, spec: Partial<NetworkPolicyObject['spec']>): NetworkPolicyObject => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: ns, name }, spec: { podSelector: {}, ...spec } });

type Probe = { port: number; proto: Protocol; via?: 'service' };

function suite(proxyMode: 'nftables' | 'iptables', cluster: string, policyBackend: 'nftables' | 'iptables') {
  const iptablesBackend = policyBackend === 'iptables';
  describe(`NetworkPolicy e2e: ${proxyMode} proxy, policy by ${policyBackend === 'iptables' ? 'iptables + ipset' : 'nftables'}, ${CROSSING}`, { skip: NOT_ROOT }, () => {
    let stateDir: string;
    let kube: Kube;
    const pods = new Map<string, PodInfo>();
    const vips = new Map<string, string>();
    const probers = new Map<string, Prober>();
    let dnsIP = '';
    const nodeNetns = (i: number) => `kw_${cluster}_node-${i}`;

    const netnsOf = (id: string) => {
      const [ns, name] = id.split('/') as [string, string];
      return podNetnsName(cluster, `${cluster}-node-${ON_NODE1.has(id) ? 1 : 2}`, { namespace: ns, name });
    };

    /** The observed matrix for one probe: "from>to" -> reachable. */
    async function observe(p: Probe, sources = IDS, targets = IDS): Promise<Map<string, boolean>> {
      const out = new Map<string, boolean>();
      await Promise.all(
        sources.map(async (from) => {
          const ts = targets.filter((t) => t !== from);
          const list = ts.map((t) => ({ host: p.via === 'service' ? vips.get(t)! : pods.get(t)!.ip, port: p.port, proto: p.proto === 'UDP' ? 'udp' : 'tcp' }));
          const got = await probers.get(from)!.probe(list, p.proto === 'UDP' ? UDP_PROBE_MS : PROBE_MS);
          ts.forEach((t, i) => out.set(`${from}>${t}`, got[i]!));
        }),
      );
      return out;
    }

    function expected(policies: NetworkPolicyObject[], p: Probe, nsLabels: Record<string, Record<string, string>> = {}): Map<string, boolean> {
      const world: PolicyWorld = { policies, pods: [...pods.values()], namespaces: new Map(NS.map((n) => [n, { ns: n, ...(nsLabels[n] ?? {}) }])) };
      const m = new Map<string, boolean>();
      for (const f of IDS) for (const t of IDS) if (f !== t) m.set(`${f}>${t}`, allowed(world, { pod: pods.get(f)! }, { pod: pods.get(t)! }, p.port, p.proto));
      return m;
    }

    const render = (m: Map<string, boolean>, want: Map<string, boolean>) =>
      [`        ${IDS.join('  ')}`, ...IDS.map((f) => `${f}   ${IDS.map((t) => (f === t ? ' - ' : `${m.get(`${f}>${t}`) ? '.' : 'X'}${m.get(`${f}>${t}`) === want.get(`${f}>${t}`) ? ' ' : '!'} `)).join('  ')}`)].join('\n');

    /**
     * Probes until the matrix equals the model's, re-probing only the cells that differ (a sync
     * to wait for; under load a UDP answer may come late), within 10 s.
     */
    async function expectMatrix(policies: NetworkPolicyObject[], probes: Probe[], nsLabels?: Record<string, Record<string, string>>): Promise<void> {
      for (const p of probes) {
        const want = expected(policies, p, nsLabels);
        const deadline = Date.now() + 10_000;
        const got = await observe(p);
        let wrong = [...want].filter(([k, v]) => got.get(k) !== v).map(([k]) => k);
        while (wrong.length && Date.now() < deadline) {
          const sources = [...new Set(wrong.map((k) => k.split('>')[0]!))];
          const again = await observe(p, sources, [...new Set(wrong.map((k) => k.split('>')[1]!))]);
          for (const k of wrong) if (again.has(k)) got.set(k, again.get(k)!);
          wrong = [...want].filter(([k, v]) => got.get(k) !== v).map(([k]) => k);
        }
        assert.deepEqual(wrong, [], `${p.via ?? 'pod'} ${p.proto}/${p.port}: observed (! = differs from the model)\n${render(got, want)}`);
      }
    }

    const apply = (policies: NetworkPolicyObject[]) => kube.apply(policies.map((p) => JSON.stringify(p)).join('\n---\n'));
    const clear = async (policies: NetworkPolicyObject[]) => {
      for (const p of policies) await kube.run(['delete', 'networkpolicy', '-n', p.metadata.namespace!, p.metadata.name, '--ignore-not-found']);
    };

    /** Applies, checks each probe's matrix, deletes (the next case starts from no policy). */
    async function check(policies: NetworkPolicyObject[], probes: Probe[]): Promise<void> {
      await apply(policies);
      try {
        await expectMatrix(policies, probes);
      } finally {
        await clear(policies);
      }
    }

    before(async () => {
      stateDir = mkdtempSync(join(tmpdir(), `kwt-${cluster}-`));
      kube = new Kube(cluster, stateDir);
      // The iptables + ipset backend is the one a kernel without nf_tables gets; this kernel has both, so it is asked for.
      const up = await kube.run(['up', '--nodes', '2', '--mode', CROSSING, '--proxy-mode', proxyMode], { timeoutMs: 240_000, env: { KUBEWIRE_NETPOL_BACKEND: policyBackend } });
      assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
      await kube.apply(model());
      await kube.apply(NS.flatMap((n) => PODS.map((p) => podYaml(cluster, n, p))).join('---\n'));
      await waitFor('the 9 pods running', async () => {
        const list = NS.map(async (n) => (await kube.json<{ items: Pod[] }>('get', 'pods', '-n', n)).items);
        const all = (await Promise.all(list)).flat().filter((p) => p.status?.phase === 'Running' && p.status.podIP);
        return all.length === 9 ? all : undefined;
      }, 60_000).then((all) => {
        for (const p of all) pods.set(`${p.metadata.namespace}/${p.metadata.name}`, { namespace: p.metadata.namespace!, name: p.metadata.name, labels: p.metadata.labels ?? {}, ip: p.status!.podIP!, node: p.spec.nodeName, ports: p.spec.containers.flatMap((c) => c.ports ?? []) });
      });
      for (const id of IDS) {
        const [ns, name] = id.split('/');
        vips.set(id, (await kube.json<Service>('get', 'service', '-n', ns!, `s-${ns}-${name}`)).spec.clusterIP!);
      }
      for (const id of IDS) probers.set(id, new Prober(netnsOf(id)));
      dnsIP = (await kube.json<Service>('get', 'service', '-n', 'kube-system', 'kube-dns')).spec.clusterIP!;
    });

    after(async () => {
      for (const p of probers.values()) p.stop();
      await kube?.run(['down'], { timeoutMs: 120_000 });
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    });

    test('no policy: every pod reaches every pod (TCP 80, UDP 81, through Services)', async () => {
      await expectMatrix([], [{ port: 80, proto: 'TCP' }, { port: 81, proto: 'UDP' }, { port: 80, proto: 'TCP', via: 'service' }]);
    });

    test('default deny ingress in x: nothing reaches x, on TCP, UDP and through Services; the rule names the policy', async () => {
      const policies = [np('x', 'deny-ingress', { ingress: [] })];
      await apply(policies);
      try {
        await expectMatrix(policies, [{ port: 80, proto: 'TCP' }, { port: 80, proto: 'UDP' }, { port: 80, proto: 'TCP', via: 'service' }]);
        const rules = iptablesBackend ? await run(['ip', 'netns', 'exec', nodeNetns(1), 'iptables-legacy-save', '-t', 'filter'], 10_000) : await run(['ip', 'netns', 'exec', nodeNetns(1), 'nft', 'list', 'table', 'inet', 'kubewire-netpol'], 10_000);
        assert.match(rules, /x\/a isolated for ingress by \[x\/deny-ingress\]: no rule allows/);
        // The node itself still reaches its own pods (kubelet probes, node-local clients).
        const own = await run(['ip', 'netns', 'exec', nodeNetns(1), 'curl', '-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${pods.get('x/a')!.ip}:80/`], 10_000);
        assert.equal(own, '200');
      } finally {
        await clear(policies);
      }
      // The last policy deleted: nothing of ours is left on any node.
      await waitFor('no policy rules left', async () => {
        for (const i of [1, 2]) {
          const left = iptablesBackend ? /KUBEWIRE-NETPOL|KWNP-/.test(await run(['ip', 'netns', 'exec', nodeNetns(i), 'iptables-legacy-save', '-t', 'filter'], 10_000)) || (await run(['ip', 'netns', 'exec', nodeNetns(i), 'ipset', 'list', '-n'], 10_000)).includes('KWNP-') : (await run(['ip', 'netns', 'exec', nodeNetns(i), 'nft', 'list', 'tables', 'inet'], 10_000)).includes('kubewire-netpol');
          if (left) return false;
        }
        return true;
      }, 5000);
    });

    test('allow from namespace y; pod AND namespace in one peer vs pod OR namespace as two peers', async () => {
      const notX = { matchExpressions: [{ key: 'ns', operator: 'NotIn' as const, values: ['x'] }] };
      await check([np('x', 'from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] })], [{ port: 80, proto: 'TCP' }]);
      await check([np('x', 'and', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: notX, podSelector: { matchLabels: { pod: 'b' } } }] }] })], [{ port: 80, proto: 'TCP' }]);
      await check([np('x', 'or', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: notX }, { podSelector: { matchLabels: { pod: 'b' } } }] }] })], [{ port: 80, proto: 'TCP' }]);
    });

    test('ipBlock with except (egress of x/a): every pod but x/b', async () => {
      const xb = pods.get('x/b')!.ip;
      await check([np('x', 'except', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${xb.split('.')[0]}.0.0.0/8`, except: [`${xb}/32`] } }] }] })], [{ port: 80, proto: 'TCP' }]);
    });

    test('egress denied but DNS: x resolves names, reaches nothing', async () => {
      const policies = [np('x', 'dns-only', { policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] }] })];
      await apply(policies);
      try {
        await expectMatrix(policies, [{ port: 80, proto: 'TCP' }, { port: 80, proto: 'TCP', via: 'service' }]);
        const resolved = await probers.get('x/a')!.probe([{ host: dnsIP, name: 's-y-b.y.svc.cluster.local', proto: 'dns' }], 2000);
        assert.deepEqual(resolved, [true], 'x/a resolves a Service name through the cluster DNS (port 53 allowed)');
      } finally {
        await clear(policies);
      }
    });

    test('named port: ingress on serve-81-tcp opens 81 and keeps 80 shut', async () => {
      await check([np('x', 'named-81', { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })], [{ port: 81, proto: 'TCP' }, { port: 80, proto: 'TCP' }]);
    });

    if (!iptablesBackend) {
      test('label changes and new pods are honoured within 0.5 s; a new pod is isolated from its start', async () => {
        const policies = [np('x', 'friends', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] })];
        await apply(policies);
        try {
          await expectMatrix(policies, [{ port: 80, proto: 'TCP' }]);
          // Namespace y joins team blue: y/* -> x/a opens. Timed from the API write to the first answer.
          const t0 = Date.now();
          await kube.apply('apiVersion: v1\nkind: Namespace\nmetadata: {name: y, labels: {ns: y, team: blue}}\n');
          const written = Date.now();
          // Probes of 200 ms, one after another: the time resolution of this figure.
          const xa = { host: pods.get('x/a')!.ip, port: 80, proto: 'tcp' };
          await waitFor('y/a reaches x/a', async () => (await probers.get('y/a')!.probe([xa], 200))[0], 5000);
          const honoured = Date.now() - written;
          process.stdout.write(`# netpol e2e: namespace label change honoured ${honoured} ms after \`apply\` returned (${written - t0} ms from its start)\n`);
          assert.ok(honoured < 1500, `honoured in ${honoured} ms`);
          await expectMatrix(policies, [{ port: 80, proto: 'TCP' }], { y: { team: 'blue' } });
          // A new pod in x with the default-deny in place: isolated once Running (its rules were in before it started).
          await apply([np('x', 'deny', { ingress: [] })]);
          await kube.apply(podYaml(cluster, 'x', 'd'));
          const d = await waitFor('x/d running', async () => {
            const p = await kube.json<Pod>('get', 'pod', '-n', 'x', 'd');
            return p.status?.phase === 'Running' && p.status.podIP ? p.status.podIP : undefined;
          }, 30_000);
          const table = await run(['ip', 'netns', 'exec', nodeNetns(2), 'nft', 'list', 'map', 'inet', 'kubewire-netpol', 'ingress'], 10_000);
          assert.ok(table.includes(d), `x/d's address ${d} is in node-2's ingress map`);
          const got = await probers.get('y/a')!.probe([{ host: d, port: 80, proto: 'tcp' }]);
          assert.deepEqual(got, [false], 'y/a does not reach the new x/d');
        } finally {
          await kube.run(['delete', 'pod', '-n', 'x', 'd', '--grace-period', '0']);
          await clear([...policies, np('x', 'deny', {})]);
        }
      });
    }
  });
}

/** Which suites run (both by default): KUBEWIRE_TEST_NETPOL_BACKENDS=nftables for one. */
const BACKENDS = (process.env.KUBEWIRE_TEST_NETPOL_BACKENDS ?? 'nftables,iptables').split(',');
if (BACKENDS.includes('nftables')) suite('nftables', 'knp1', 'nftables');
if (BACKENDS.includes('iptables')) suite('iptables', 'knp2', 'iptables');
