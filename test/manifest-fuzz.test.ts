// Generated manifests through `apply` as the CLI runs it (its manifest reader, then its apply
// against the API server over a unix socket), with the controllers running behind the API:
// valid objects of every kind bent at random places (wrong types, huge and negative
// numbers, deep nesting, long and odd strings, missing and unknown fields), then serialised
// as YAML or JSON, some of them cut or garbled. Each apply must succeed or be refused with
// a clear message (ManifestError, or the server's Status: never a 5xx, never a TypeError);
// objects the reader refuses go straight to the API too, which must refuse them with a 4xx;
// the controllers must not throw on what got in. Bounded: a fixed number from a fixed seed.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { resourceOfKind } from '../src/api/resources.ts';
import type { KubeObject } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { ApiClient, ApiError } from '../src/client/rest.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { Store } from '../src/apiserver/store.ts';
import { apply } from '../src/cli/kubectl.ts';
import { ControllerManager } from '../src/controllers/manager.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import { ManifestError, parseManifests } from '../src/manifest/load.ts';

const MANIFESTS = 2500;

let dir: string;
let store: Store;
let server: ApiServer;
let controllers: ControllerManager;
let client: ApiClient;
const controllerErrors: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kwt-mfuzz-'));
  store = new Store(join(dir, 'store.db'));
  const api = new Api(store, { podLimit: { pods: 50, why: 'fuzz' } });
  for (const name of ['default', 'kube-system']) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  api.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDR: '10.244.0.0/24' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }, { system: true });
  controllers = new ControllerManager(new LocalClient(api, { shareObjects: true }), { clusterCIDR: '10.244.0.0/16', nodeCIDRMask: 24, log: (l) => controllerErrors.push(l) });
  await controllers.start();
  server = new ApiServer(api);
  await server.listen(join(dir, 'api.sock'));
  client = new ApiClient(join(dir, 'api.sock'));
});

after(async () => {
  controllers.stop();
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const TEMPLATES: KubeObject[] = [
  { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { app: 'a' } }, spec: { containers: [{ name: 'c', image: 'nginx', ports: [{ containerPort: 80, name: 'http' }], env: [{ name: 'A', value: '1' }] }], restartPolicy: 'Always' } },
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { replicas: 2, selector: { matchLabels: { app: 'a' } }, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 1 } }, template: { metadata: { labels: { app: 'a' } }, spec: { containers: [{ name: 'c', image: 'nginx', args: ['x'] }] } } } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { selector: { app: 'a' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP', nodePort: 30080 }], type: 'NodePort', sessionAffinity: 'ClientIP' } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ns', labels: { team: 'x' } } },
  { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'sec' }, type: 'Opaque', data: { a: 'YWJj' }, stringData: { b: 'x' } },
  { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'i', annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/$1' } }, spec: { tls: [{ hosts: ['a.com'], secretName: 'sec' }], rules: [{ host: 'a.com', http: { paths: [{ path: '/x', pathType: 'Prefix', backend: { service: { name: 's', port: { number: 80 } } } }] } }] } },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'e', labels: { 'kubernetes.io/service-name': 's' } }, addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true } }] },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'st' }, spec: { replicas: 2, serviceName: 's', podManagementPolicy: 'Parallel', selector: { matchLabels: { app: 'st' } }, template: { metadata: { labels: { app: 'st' } }, spec: { securityContext: { runAsUser: 1000 }, containers: [{ name: 'c', image: 'x', command: ['sleep', '1'], ports: [{ name: 'http', containerPort: 80 }], readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 2 }, livenessProbe: { tcpSocket: { port: 80 }, failureThreshold: 3 } }] } } } },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'ds' }, spec: { selector: { matchLabels: { app: 'ds' } }, template: { metadata: { labels: { app: 'ds' } }, spec: { nodeSelector: { 'kubernetes.io/os': 'linux' }, containers: [{ name: 'c', image: 'x', startupProbe: { exec: { command: ['true'] } } }] } } } },
  { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { completions: 3, parallelism: 2, backoffLimit: 1, template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'c', image: 'x', command: ['true'], env: [{ name: 'A', valueFrom: { configMapKeyRef: { name: 'cm', key: 'a' } } }], envFrom: [{ secretRef: { name: 'sec' } }] }] } } } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { a: 'b' }, binaryData: { c: 'YWJj' } },
];

/** The same generated inputs every run. */
function generator(seed: number) {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  return { next, pick };
}
type G = ReturnType<typeof generator>;

function oddValue(g: G, depth = 0): unknown {
  switch (Math.floor(g.next() * 16)) {
    case 0: return null;
    case 1: return -1;
    case 2: return 2 ** 53;
    case 3: return 1e308;
    case 4: return 0.5;
    case 5: return '';
    case 6: return 'x'.repeat(Math.floor(g.next() * 70_000));
    case 7: return g.pick(['UPPER', 'with space', 'ünïcödé', '../etc', '$(rm -rf /)', '\u0000nul', 'a'.repeat(64), '-leading', 'x.y', '*', '10.244.0.0/16']);
    case 8: return true;
    case 9: return [];
    case 10: return {};
    case 11: return depth > 40 ? 1 : [oddValue(g, depth + 1)];
    case 12: return depth > 40 ? 1 : { deep: oddValue(g, depth + 1) };
    case 13: return Array.from({ length: Math.floor(g.next() * 300) }, () => g.pick(['a', 1, null]));
    case 14: return '80';
    default: return 65536;
  }
}

/** Every path into an object (keys and array indexes). */
function paths(v: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const p = [...at, Array.isArray(v) && /^\d+$/.test(k) ? Number(k) : k];
      out.push(p);
      paths(x, p, out);
    }
  }
  return out;
}

function mutate(g: G, obj: KubeObject): KubeObject {
  const o = structuredClone(obj) as Record<string, unknown>;
  const n = 1 + Math.floor(g.next() * 3);
  for (let i = 0; i < n; i++) {
    const all = paths(o);
    const p = g.pick(all);
    let parent: Record<string | number, unknown> = o;
    for (const k of p.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
    const last = p[p.length - 1]!;
    const r = g.next();
    if (r < 0.2) delete parent[last];
    else if (r < 0.3) parent[`unknown${Math.floor(g.next() * 9)}`] = oddValue(g);
    else parent[last] = oddValue(g);
  }
  return o as KubeObject;
}

function manifestText(g: G, obj: KubeObject): string {
  const r = g.next();
  let text = r < 0.7 ? stringify(obj, { aliasDuplicateObjects: false }) : JSON.stringify(obj);
  if (g.next() < 0.1) {
    const at = Math.floor(g.next() * text.length);
    text = g.pick([text.slice(0, at), `${text.slice(0, at)}\t${text.slice(at)}`, `${text.slice(0, at)}: : [${text.slice(at)}`, `a: &x [*x]\n---\n${text}`, `${text}\n---\n${text}`]);
  }
  return text;
}

const clear = (message: string) => message.length > 0 && !/\n\s+at /.test(message) && !/TypeError|ReferenceError|Cannot read prop|undefined is not|is not a function/.test(message);

test(`${MANIFESTS} generated manifests through apply: applied, or refused clearly; the API never answers 5xx; controllers never throw`, async () => {
  const g = generator(20261201);
  const outcome = { applied: 0, refusedByReader: 0, refusedByServer: 0 };
  const unclear: string[] = [];
  for (let i = 0; i < MANIFESTS; i++) {
    const base = g.pick(TEMPLATES);
    const obj = g.next() < 0.1 ? structuredClone(base) : mutate(g, base);
    if (obj?.metadata && typeof obj.metadata === 'object') obj.metadata.name = `${String(obj.metadata.name ?? 'x').slice(0, 20)}-${i}`;
    const text = manifestText(g, obj);
    const problems: string[] = [];
    let manifests;
    try {
      manifests = parseManifests('fuzz.yaml', text, problems);
    } catch (e) {
      unclear.push(`reader threw ${String(e)} on ${JSON.stringify(text.slice(0, 200))}`);
      continue;
    }
    for (const p of problems) if (!p.startsWith('fuzz.yaml: document ') || !clear(p)) unclear.push(`reader: ${p.slice(0, 300)}`);
    if (problems.length) {
      outcome.refusedByReader++;
      // What the reader refuses, sent to the API anyway (a client that skips the checks): a 4xx.
      if (obj && typeof obj === 'object' && typeof obj.kind === 'string' && obj.metadata && typeof obj.metadata === 'object') {
        let rt;
        try {
          rt = resourceOfKind(obj.kind);
        } catch {
          continue; // a kind kubewire does not serve: the reader's message was the answer
        }
        const path = `${rt.group ? `/apis/${rt.group}/${rt.version}` : '/api/v1'}${rt.namespaced ? '/namespaces/default' : ''}/${rt.plural}`;
        await client.call('POST', path, obj).then(
          () => undefined,
          (e: unknown) => {
            if (!(e instanceof ApiError) || e.code >= 500 || !clear(e.message)) unclear.push(`API ${e instanceof ApiError ? e.code : ''} for a refused ${obj.kind}: ${String((e as Error).message).slice(0, 300)}`);
          },
        );
      }
      continue;
    }
    try {
      await apply(client, manifests, undefined, false, () => undefined);
      outcome.applied++;
    } catch (e) {
      outcome.refusedByServer++;
      if (!(e instanceof ManifestError || (e instanceof ApiError && e.code < 500)) || !clear((e as Error).message)) unclear.push(`apply: ${e instanceof ApiError ? e.code : (e as Error).name} ${String((e as Error).message).slice(0, 300)}`);
    }
  }
  await controllers.idle();
  assert.deepEqual(unclear.slice(0, 15), [], `${unclear.length} unclear outcomes`);
  const crashes = controllerErrors.filter((l) => !clear(l));
  assert.deepEqual(crashes.slice(0, 10), [], 'controllers threw on what the API let in');
  assert.equal(await client.text('/healthz'), 'ok');
  assert.ok(outcome.applied > MANIFESTS / 20 && outcome.refusedByReader > MANIFESTS / 5, JSON.stringify(outcome));
  assert.ok(store.countActivePods() <= 50, 'the pod limit held');
  process.stdout.write(`# outcomes: ${JSON.stringify(outcome)}\n`);
});
