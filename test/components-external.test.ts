// `kubewire up --components external` (issue 29): each node's proxy and ingress controller run
// as programs of their own in the node's namespace (kubewire proxy, kubewire ingress), the
// cluster DNS as `kubewire dns` in the coredns pods, each with only a kubeconfig. One 2-node
// cluster: a Service answers through its ClusterIP and a NodePort, its name resolves through
// kube-dns, an Ingress answers from outside on both nodes (and gets its status); a proxy killed
// with -9 is started again by the daemon; the real kubectl's `apply --dry-run=server -f deploy/`
// passes and stores nothing. And bad kubeconfigs end `kubewire dns` and `kubewire ingress` with
// one line and exit 1.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import type { Ingress, Service } from '../src/api/types.ts';
import { NOT_ROOT } from './helpers.ts';
import { Kube, waitFor, webApp } from './kube.ts';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'kubewire.js');
const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';

const INGRESS = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules: [{host: web.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
`;

function run(argv: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

describe('up --components external: node components as programs with only a kubeconfig', { skip: NOT_ROOT }, () => {
  const cluster = process.env.KUBEWIRE_TEST_CLUSTER ?? `kext${process.pid % 10000}`;
  let dir: string;
  let kube: Kube;
  let kubeconfig: string;
  const components = () => join(dir, cluster, 'components');
  const livePid = (c: string, node: string) => {
    try {
      const pid = Number(readFileSync(join(components(), `${c}-${cluster}-${node}.pid`), 'utf8'));
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(c) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  const inNode = (node: string, ...argv: string[]) => kube.run(['exec', '--node', `${cluster}-${node}`, '--', ...argv]);
  const external = (...argv: string[]) => kube.run(['exec', '--external', '--', ...argv]);

  before(async () => {
    dir = mkdtempSync(join(process.env.KUBEWIRE_TEST_SCRATCH ?? tmpdir(), 'kwt-ext-'));
    kube = new Kube(cluster, dir);
    kubeconfig = join(dir, 'kubeconfig');
    const up = await kube.run(['up', '--nodes', '2', '--components', 'external', '--kubeconfig', kubeconfig], { timeoutMs: 240_000 });
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    await kube.apply(`${webApp({ serviceType: 'NodePort' })}---\n${INGRESS}`);
    await kube.ok('rollout', 'status', 'deployment/web', '--timeout', '90s');
    await kube.ok('rollout', 'status', '-n', 'kube-system', 'deployment/coredns', '--timeout', '90s');
  });
  after(async () => {
    await kube.run(['down', '--kubeconfig', kubeconfig], { timeoutMs: 120_000 });
    rmSync(dir, { recursive: true, force: true });
  });

  test('each node runs kubewire proxy and kubewire ingress with a kubeconfig; the coredns pods run kubewire dns', async () => {
    for (const node of ['node-1', 'node-2']) {
      for (const c of ['proxy', 'ingress']) {
        const pid = livePid(c, node);
        assert.ok(pid, `${c} runs on ${node}`);
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        assert.ok(argv.includes('--kubeconfig'), `${c} on ${node}: ${argv.join(' ')}`);
      }
    }
    const dns = await kube.json<{ spec: { template: { spec: { containers: Array<{ command: string[] }> } } } }>('get', '-n', 'kube-system', 'deployment', 'coredns');
    assert.deepEqual(dns.spec.template.spec.containers[0]!.command.slice(3, 6), ['dns', '--kubeconfig', join(components(), 'pod.kubeconfig')]);
  });

  test('Services, DNS and Ingress work in that layout', async () => {
    const svc = await kube.json<Service>('get', 'service', 'web');
    const body = async (r: Promise<{ code: number; stdout: string }>) => {
      const x = await r;
      return x.code === 0 && /^pod: web-/m.test(x.stdout) ? x.stdout : undefined;
    };
    await waitFor('the ClusterIP from node 2', () => body(inNode('node-2', 'curl', '-s', '-m', '2', `http://${svc.spec.clusterIP}/`)));
    await waitFor('the NodePort from outside', () => body(external('curl', '-s', '-m', '2', `http://172.18.0.11:${svc.spec.ports![0]!.nodePort}/`)));
    const a = await waitFor('web.default.svc.cluster.local through kube-dns', async () => {
      const r = await inNode('node-1', 'dig', '+short', '+time=2', '+tries=1', '@10.96.0.10', 'web.default.svc.cluster.local');
      return r.stdout.trim() || undefined;
    });
    assert.equal(a, svc.spec.clusterIP);
    for (const ip of ['172.18.0.11', '172.18.0.12']) await waitFor(`the Ingress on ${ip}`, () => body(external('curl', '-s', '-m', '2', '-H', 'Host: web.example', `http://${ip}/`)));
    const status = await waitFor('the Ingress status (node 1 writes it)', async () => (await kube.json<Ingress>('get', 'ingress', 'web')).status?.loadBalancer?.ingress);
    assert.deepEqual(status.map((s) => s.ip), ['172.18.0.11', '172.18.0.12']);
  });

  test('a proxy killed with -9 is started again by the daemon, and the Service still answers', async () => {
    const was = livePid('proxy', 'node-2')!;
    process.kill(was, 'SIGKILL');
    const again = await waitFor('a new proxy on node 2', async () => livePid('proxy', 'node-2') !== was && livePid('proxy', 'node-2'), 15_000);
    assert.notEqual(again, was);
    const svc = await kube.json<Service>('get', 'service', 'web');
    const r = await inNode('node-2', 'curl', '-s', '-m', '2', `http://${svc.spec.clusterIP}/`);
    assert.match(r.stdout, /^pod: web-/m);
  });

  test("kubectl apply --dry-run=server -f deploy/ passes (kubectl v1.32) and stores nothing", { skip: existsSync(KUBECTL) ? false : `${KUBECTL} is not installed` }, async () => {
    const r = await run([KUBECTL, 'apply', '--dry-run=server', '-f', join(ROOT, 'deploy')], { KUBECONFIG: kubeconfig });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /clusterrolebinding\.rbac\.authorization\.k8s\.io\/kubewire:proxy created \(server dry run\)/);
    assert.match(r.stdout, /daemonset\.apps\/kubewire-cni created \(server dry run\)/);
    const left = await run([KUBECTL, 'get', 'clusterroles,clusterrolebindings', '-o', 'name'], { KUBECONFIG: kubeconfig });
    assert.equal(left.code, 0, left.stderr);
    assert.equal(left.stdout, '');
  });

  test('dns and ingress: a bad kubeconfig is one line and exit 1 (missing, pointing nowhere, a certificate it does not trust)', async () => {
    const good = parse(readFileSync(join(components(), 'node.kubeconfig'), 'utf8')) as { clusters: Array<{ cluster: Record<string, string> }>; users: Array<{ user: Record<string, string> }> };
    const nowhere = structuredClone(good);
    nowhere.clusters[0]!.cluster.server = 'https://127.0.0.1:1';
    const wrongCa = structuredClone(good);
    wrongCa.clusters[0]!.cluster['certificate-authority-data'] = good.users[0]!.user['client-certificate-data']!; // a certificate, not the server's issuer
    const files = { nowhere, wrongCa };
    for (const [name, doc] of Object.entries(files)) writeFileSync(join(dir, `${name}.kubeconfig`), stringify(doc));
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'missing.kubeconfig'), /^error: kubeconfig .*missing\.kubeconfig: no such file\n$/],
      [join(dir, 'nowhere.kubeconfig'), /^error: cannot reach the API server at https:\/\/127\.0\.0\.1:1: .*ECONNREFUSED.*\n$/],
      [join(dir, 'wrongCa.kubeconfig'), /^error: the API server at https:\/\/127\.0\.0\.1:\d+ is not the one the kubeconfig trusts .*\n$/],
    ];
    // The two programs side by side, the cases one after another (an unreachable server is waited for 5 s).
    await Promise.all(['dns', 'ingress'].map(async (c) => {
      const ports = c === 'dns' ? ['--dns-port', '15353', '--health-port', '18080', '--ready-port', '18181', '--metrics-port', '19153'] : ['--http-port', '18088', '--https-port', '18443', '--healthz-port', '20254'];
      for (const [file, want] of cases) {
        const r = await run([process.execPath, BIN, c, '--kubeconfig', file, ...ports], {}, 90_000);
        assert.equal(r.code, 1, `${c} ${file}: ${r.stderr}`);
        assert.match(r.stderr, want, `${c} ${file}`);
      }
    }));
  });
});
