// The API layer as plain data: manifests (files, document indexes, fields), validation in
// Kubernetes' wording, REST paths, label and field selectors, merge patch, and the API
// server's rules (namespaces, status subresource, graceful deletion, dry run, watch) over
// its real unix-socket adapter.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { matches, parseSelector } from '../src/api/labels.ts';
import { parseResourcePath, resourceNamed, resourcePath } from '../src/api/resources.ts';
import type { Pod } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { ApiClient, ApiError } from '../src/client/rest.ts';
import { WatchLines } from '../src/client/watch.ts';
import { LocalClient, type ObjectClient } from '../src/apiserver/objects.ts';
import { isAlreadyExists, isConflict, isNotFound } from '../src/apiserver/status.ts';
import { ApiServer, mergePatch } from '../src/apiserver/server.ts';
import { Store } from '../src/apiserver/store.ts';
import { loadManifests, ManifestError, parseManifests, splitDocuments } from '../src/manifest/load.ts';

const deployment = (over: Record<string, unknown> = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web' },
  spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 80 }] }] } }, ...over },
});

test('manifests: multi-document YAML and v1 List, every problem named by file, document and field, nothing returned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-manifests-'));
  try {
    writeFileSync(join(dir, 'a.yaml'), `apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, image: x}]}}\n`);
    writeFileSync(join(dir, 'b.json'), JSON.stringify(deployment()));
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const ok = loadManifests([dir]);
    assert.deepEqual(ok.map((m) => [m.source.split('/').pop(), m.index, m.object.kind]), [['a.yaml', 0, 'Namespace'], ['a.yaml', 2, 'Pod'], ['b.json', 0, 'Deployment']]);

    const problems: string[] = [];
    const text = [
      'apiVersion: v1\nkind: Pod\nmetadata: {name: Web_1}\nspec: {containers: [{name: c, image: x}]}',
      'apiVersion: v1\nkind: Widget\nmetadata: {name: w}',
      'apiVersion: v1\nkind: Deployment\nmetadata: {name: d}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: x, ports: [{containerPort: 0, protocol: ICMP}]}]}',
      'apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {podCIDR: 10.244.300.0/24}',
      'kind: [unclosed',
    ].join('\n---\n');
    assert.deepEqual(parseManifests('bad.yaml', text, problems), []);
    const expect = [
      /^bad\.yaml: document 0 \(Pod "Web_1"\): metadata\.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain/,
      /^bad\.yaml: document 1 \(Widget "w"\): no matches for kind "Widget" in version "v1"/,
      /^bad\.yaml: document 2 \(Deployment "d"\): no matches for kind "Deployment" in version "v1" \(kubewire serves Deployment as apps\/v1\)/,
      /^bad\.yaml: document 3 \(Pod "p"\): spec\.containers\[0\]\.name: Required value/,
      /^bad\.yaml: document 3 \(Pod "p"\): spec\.containers\[0\]\.ports\[0\]\.containerPort: Invalid value: 0: must be between 1 and 65535/,
      /^bad\.yaml: document 3 \(Pod "p"\): spec\.containers\[0\]\.ports\[0\]\.protocol: Unsupported value: "ICMP"/,
      /^bad\.yaml: document 4 \(Node "n"\): spec\.podCIDR: Invalid value: "10\.244\.300\.0\/24": must be a CIDR/,
      /^bad\.yaml: document 5: YAML syntax error at line \d+, column \d+/,
    ];
    assert.equal(problems.length, expect.length, problems.join('\n'));
    expect.forEach((re, i) => assert.match(problems[i]!, re));
    assert.throws(() => loadManifests([join(dir, 'missing.yaml')]), (e: unknown) => e instanceof ManifestError && /the path ".*missing\.yaml" does not exist/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('YAML as kubectl reads it: document indexes by --- and ..., errors with their lines, duplicate keys and alias bombs refused, dates stay strings', () => {
  assert.deepEqual(splitDocuments('a: 1\n---\n---\nb: 2\n').map((d) => d.text.trim()), ['a: 1', '', 'b: 2']);
  assert.deepEqual(splitDocuments('# only a comment\n---\na: 1').map((d) => d.text.trim()), ['a: 1']);
  assert.deepEqual(splitDocuments('---\n---\nb: 2').map((d) => d.text.trim()), ['', 'b: 2']);
  assert.deepEqual(splitDocuments('a: 1\n...\n---\nb: 2').map((d) => d.text.trim()), ['a: 1', 'b: 2']);
  assert.deepEqual(splitDocuments('--- {a: 1}\n--- {b: 2}').map((d) => d.text.trim()), ['{a: 1}', '{b: 2}']);
  const problems: string[] = [];
  const pod = (name: string, extra = '') => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}${extra}}\nspec: {containers: [{name: c, image: x}]}`;
  const text = [pod('a'), 'a: [unclosed\nb: 1', pod('b', ', name: c'), `x: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n${Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`).join('\n')}`, pod('d')].join('\n---\n');
  const ok = parseManifests('y.yaml', text, problems);
  assert.deepEqual(ok.map((m) => m.object.metadata.name), ['a', 'd'], 'the good documents are read');
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.match(problems[0]!, /^y\.yaml: document 1: YAML syntax error at line [6-7], column \d+: /);
  assert.match(problems[1]!, /^y\.yaml: document 2: YAML syntax error at line \d+, column \d+: duplicated mapping key/);
  assert.match(problems[2]!, /^y\.yaml: document 3: its aliases expand to more than 1,000,000 nodes/);
  const dated = parseManifests('d.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: n, annotations: {when: 2026-12-01, yes: yes}}', []);
  assert.deepEqual(dated[0]!.object.metadata.annotations, { when: '2026-12-01', yes: 'yes' }, 'YAML 1.2 core: no timestamps, yes is a string');
});

test('deployment checks: selector must match the template, replicas non-negative, restartPolicy Always', () => {
  const problems: string[] = [];
  const bad = deployment({ replicas: -1, selector: { matchLabels: { app: 'other' } } });
  (bad.spec.template.spec as { restartPolicy?: string }).restartPolicy = 'Never';
  parseManifests('d.yaml', JSON.stringify(bad), problems);
  assert.ok(problems.some((p) => /spec\.replicas: Invalid value: -1/.test(p)));
  assert.ok(problems.some((p) => /spec\.template\.metadata\.labels: Invalid value: `selector` does not match template `labels`/.test(p)));
  assert.ok(problems.some((p) => /spec\.template\.spec\.restartPolicy: Unsupported value: "Never"/.test(p)));
});

test('REST paths and the names kubectl accepts', () => {
  const pods = resourceNamed('po')!;
  const deploy = resourceNamed('deployments.apps')!;
  assert.equal(resourcePath(pods, 'default', 'web', 'log'), '/api/v1/namespaces/default/pods/web/log');
  assert.equal(resourcePath(deploy, 'shop'), '/apis/apps/v1/namespaces/shop/deployments');
  assert.equal(resourcePath(resourceNamed('ns')!, undefined, 'shop'), '/api/v1/namespaces/shop');
  assert.deepEqual(parseResourcePath('/api/v1/namespaces/shop'), { rt: resourceNamed('namespace'), namespace: undefined, name: 'shop', subresource: undefined });
  assert.deepEqual(parseResourcePath('/api/v1/namespaces/shop/status'), { rt: resourceNamed('namespace'), namespace: undefined, name: 'shop', subresource: 'status' }, 'a Namespace subresource, not a plural named status');
  assert.equal(parseResourcePath('/apis/apps/v1/namespaces/shop/deployments/web/scale')?.subresource, 'scale');
  assert.equal(parseResourcePath('/api/v1/pods')?.rt.kind, 'Pod');
  assert.equal(parseResourcePath('/api/v1/namespaces/x/nodes'), undefined, 'nodes are not namespaced');
  assert.equal(resourceNamed('ing')!.kind, 'Ingress');
  assert.equal(resourcePath(resourceNamed('ingresses.networking.k8s.io')!, 'shop', 'web'), '/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web');
  assert.equal(resourceNamed('gateways'), undefined);
  assert.equal(resourcePath(resourceNamed('endpointslices')!, 'ns1'), '/apis/discovery.k8s.io/v1/namespaces/ns1/endpointslices');
});

test('label selectors and merge patch', () => {
  const sel = parseSelector('app=web,tier!=db,env in (prod, staging),!canary');
  assert.ok(matches(sel, { app: 'web', env: 'prod' }));
  assert.ok(!matches(sel, { app: 'web', env: 'dev' }));
  assert.ok(!matches(sel, { app: 'web', env: 'prod', tier: 'db' }));
  assert.ok(!matches(sel, { app: 'web', env: 'prod', canary: 'yes' }));
  assert.throws(() => parseSelector('a b c'), /unable to parse/);
  assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] }), { a: 1, b: { d: 3, e: 4 }, f: [1] });
});

/** An API server on a unix socket in a temporary directory, holding these namespaces; close() removes it all. */
async function serveApi(prefix: string, namespaces: string[], storeOpts?: ConstructorParameters<typeof Store>[1], serverOpts?: ConstructorParameters<typeof ApiServer>[2]) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = new Store(join(dir, 'store.db'), storeOpts);
  const api = new Api(store);
  for (const name of namespaces) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  const server = new ApiServer(api, {}, serverOpts);
  await server.listen(join(dir, 'api.sock'));
  const close = async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, store, api, server, client: new ApiClient(join(dir, 'api.sock')), close };
}

describe('API server over its unix socket', () => {
  let store: Store;
  let api: Api;
  let client: ApiClient;
  const pods = resourceNamed('pods')!;
  let close: () => Promise<void>;
  before(async () => {
    ({ store, api, client, close } = await serveApi('kwt-api-', ['default', 'shop']));
  });
  after(() => close());

  const pod = (name: string, ns = 'shop', labels: Record<string, string> = {}): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { containers: [{ name: 'c', image: 'x' }] } });

  test('create, get, list with selectors; the namespace must exist; status is the server\'s', async () => {
    const created = await client.create(pods, { ...pod('a', 'shop', { app: 'web' }), status: { phase: 'Running' } });
    assert.equal(created.status?.phase, 'Pending', 'clients cannot set status on create');
    assert.ok(created.metadata.uid && created.metadata.resourceVersion);
    await client.create(pods, pod('b', 'shop', { app: 'db' }));
    assert.deepEqual((await client.list(pods, 'shop', { labelSelector: 'app=web' })).items.map((p) => p.metadata.name), ['a']);
    assert.deepEqual((await client.list(pods, undefined, { fieldSelector: 'metadata.namespace=shop,metadata.name!=a' })).items.map((p) => p.metadata.name), ['b']);
    await assert.rejects(client.create(pods, pod('c', 'nowhere')), (e: unknown) => e instanceof ApiError && e.code === 404 && /namespaces "nowhere" not found/.test(e.message));
    await assert.rejects(client.create(pods, pod('a')), (e: unknown) => e instanceof ApiError && e.code === 409 && /already exists/.test(e.message));
    await assert.rejects(client.call('GET', '/api/v1/pods?labelSelector=a%20b%20c'), (e: unknown) => e instanceof ApiError && e.code === 422);
    await assert.rejects(client.call('GET', '/api/v1/widgets'), (e: unknown) => e instanceof ApiError && e.code === 404);
  });

  test('dry run checks everything and changes nothing', async () => {
    const rv = store.currentRV();
    await client.call('POST', '/api/v1/namespaces/shop/pods?dryRun=All', pod('dry'));
    assert.equal(store.currentRV(), rv);
    assert.equal(api.tryGet({ kind: 'Pod', namespace: 'shop', name: 'dry' }), undefined);
    await assert.rejects(client.call('POST', '/api/v1/namespaces/shop/pods?dryRun=All', { ...pod('Bad Name') }), (e: unknown) => e instanceof ApiError && e.code === 422 && /metadata\.name/.test(e.message));
  });

  test('pods are immutable but for image and a first nodeName; a bound pod is deleted gracefully', async () => {
    const p = await client.get<Pod>(pods, 'shop', 'a');
    await assert.rejects(client.update(pods, { ...p, spec: { ...p.spec, restartPolicy: 'Never' } }), (e: unknown) => e instanceof ApiError && /pod updates may not change fields/.test(e.message));
    const bound = api.mutate<Pod>({ kind: 'Pod', namespace: 'shop', name: 'a' }, (x) => ({ ...x, spec: { ...x.spec, nodeName: 'n1' } }));
    assert.equal(bound.spec.nodeName, 'n1');
    await client.delete(pods, 'shop', 'a');
    const marked = await client.get<Pod>(pods, 'shop', 'a');
    assert.ok(marked.metadata.deletionTimestamp, 'a pod on a node waits for its node agent');
    assert.equal(marked.metadata.deletionGracePeriodSeconds, 30);
    api.finalize({ kind: 'Pod', namespace: 'shop', name: 'a' }, marked.metadata.uid);
    await assert.rejects(client.get(pods, 'shop', 'a'), (e: unknown) => e instanceof ApiError && e.code === 404);
    await client.delete(pods, 'shop', 'b'); // unbound: gone at once
    await assert.rejects(client.get(pods, 'shop', 'b'), (e: unknown) => e instanceof ApiError && e.code === 404);
  });

  test('watch streams what changes after the list, filtered by selector', async () => {
    const list = await client.list(pods, 'shop');
    const seen: string[] = [];
    const stop = await client.watch(pods, 'shop', { resourceVersion: list.metadata.resourceVersion, labelSelector: 'app=web' }, (e) => seen.push(`${e.type} ${e.object.metadata.name}`));
    await client.create(pods, pod('w1', 'shop', { app: 'web' }));
    await client.create(pods, pod('other', 'shop', { app: 'db' }));
    await client.delete(pods, 'shop', 'w1');
    for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    stop();
    assert.deepEqual(seen, ['ADDED w1', 'DELETED w1']);
  });

  test('the in-process client answers as the socket client does: one ObjectClient, one isNotFound', async () => {
    const clients: Array<[string, ObjectClient]> = [['socket', client], ['local', new LocalClient(api)]];
    const seen: Record<string, string[]> = {};
    for (const [name, c] of clients) {
      const events: string[] = [];
      const list = await c.list(pods, 'default');
      const stop = await c.watch(pods, 'default', { resourceVersion: list.metadata.resourceVersion, labelSelector: `via=${name}` }, (e) => events.push(`${e.type} ${e.object.metadata.name.replace(name, 'X')}`));
      const made = await c.create(pods, pod(`${name}-p`, 'default', { via: name }));
      assert.equal((await c.get<Pod>(pods, 'default', `${name}-p`)).metadata.uid, made.metadata.uid);
      assert.deepEqual((await c.list(pods, 'default', { labelSelector: `via=${name}` })).items.map((p) => p.metadata.name), [`${name}-p`]);
      const status = await c.updateStatus(pods, { ...made, status: { phase: 'Running' } });
      assert.equal((status as Pod).status?.phase, 'Running');
      await c.create(pods, pod(`${name}-other`, 'default', { via: 'nobody' }));
      await assert.rejects(c.get(pods, 'default', 'nothing'), (e: unknown) => isNotFound(e) && !isAlreadyExists(e), `${name}: not found`);
      await assert.rejects(c.create(pods, pod(`${name}-p`, 'default')), (e: unknown) => isAlreadyExists(e) && !isNotFound(e), `${name}: already exists`);
      await assert.rejects(c.update(pods, { ...made, metadata: { ...made.metadata, resourceVersion: '1' } }), (e: unknown) => isConflict(e), `${name}: a stale update conflicts`);
      await c.delete(pods, 'default', `${name}-p`);
      for (let i = 0; i < 50 && events.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      stop();
      seen[name] = events;
    }
    assert.deepEqual(seen.local, seen.socket, 'the same events, filtered by the same selector');
    assert.deepEqual(seen.socket, ['ADDED X-p', 'MODIFIED X-p', 'DELETED X-p']);
  });

  test('a terminating namespace takes no new objects', async () => {
    api.delete({ kind: 'Namespace', name: 'shop' });
    await assert.rejects(client.create(pods, pod('late')), (e: unknown) => e instanceof ApiError && /being terminated/.test(e.message));
    await assert.rejects(client.delete(resourceNamed('ns')!, undefined, 'default'), (e: unknown) => e instanceof ApiError && /may not be deleted/.test(e.message));
  });
});

test('unknown fields are refused as kubectl --validate=strict does; --validate=false accepts them', () => {
  const text = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, lables: {a: b}}
spec:
  replica: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      contianers: []
      containers: [{name: web, image: nginx, port: 80, ports: [{containerPort: 80, protcol: TCP}], livenessProbe: {httpGet: {path: /, port: 80}}}]
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {selector: {app: web}, ports: [{port: 80, target: 8080}], externalTrafficPolicy: Cluster, type: NodePort}
`;
  const problems: string[] = [];
  assert.deepEqual(parseManifests('typo.yaml', text, problems), []);
  assert.deepEqual(problems.map((p) => p.match(/unknown field "([^"]+)"/)?.[1]), [
    'metadata.lables',
    'spec.replica',
    'spec.template.spec.contianers',
    'spec.template.spec.containers[0].port',
    'spec.template.spec.containers[0].ports[0].protcol',
    'spec.ports[0].target',
  ]);
  assert.match(problems[1]!, /^typo\.yaml: document 0 \(Deployment "web"\): strict decoding error: unknown field "spec\.replica"/);
  const lenient: string[] = [];
  assert.equal(parseManifests('typo.yaml', text, lenient, { validate: 'ignore' }).length, 2);
  assert.deepEqual(lenient, []);
});

describe('watches at volume: a slow watcher is cut off, never waited for; bookmarks; a too-old resourceVersion is 410', () => {
  let dir: string;
  let store: Store;
  let api: Api;
  let client: ApiClient;
  const pods = resourceNamed('pods')!;
  let close: () => Promise<void>;
  before(async () => {
    ({ dir, store, api, client, close } = await serveApi('kwt-watch-', ['default'], { eventLogSize: 100 }, { watchBufferBytes: 64 << 10, bookmarkMs: 50 }));
  });
  after(() => close());
  const pod = (name: string): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', annotations: { pad: 'x'.repeat(1000) } }, spec: { containers: [{ name: 'c', image: 'x' }] } });

  test('a watcher that stops reading gets 410 Expired once 64 KiB wait for it; the writes went on meanwhile', async () => {
    const rv = (await client.list(pods, 'default')).metadata.resourceVersion;
    const res = await new Promise<import('node:http').IncomingMessage>((resolve) => request({ socketPath: join(dir, 'api.sock'), path: `/api/v1/namespaces/default/pods?watch=1&resourceVersion=${rv}` }, resolve).end());
    res.pause(); // a client that does not read
    const t0 = performance.now();
    for (let i = 0; i < 3000; i++) api.create(pod(`p${i}`));
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(performance.now() - t0 < 10_000, 'writes never waited for the watcher');
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += d));
    res.resume();
    await new Promise((r) => res.on('end', r));
    const last = JSON.parse(text.trim().split('\n').pop()!);
    assert.equal(last.type, 'ERROR');
    assert.equal(last.object.code, 410);
    assert.equal(last.object.reason, 'Expired');
    assert.ok(text.split('\n').length < 3000, 'cut off, not sent everything');
  });

  test('bookmarks carry the current resourceVersion; resuming from one that is gone is 410', async () => {
    // On the wire: the client's reflector takes bookmarks in (its resourceVersion) and hands on only changes.
    const seen: Array<{ type: string; rv?: string }> = [];
    const res = await new Promise<import('node:http').IncomingMessage>((resolve) => request({ socketPath: join(dir, 'api.sock'), path: `/api/v1/namespaces/default/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${store.currentRV()}` }, resolve).end());
    const lines = new WatchLines();
    res.setEncoding('utf8');
    res.on('data', (d: string) => seen.push(...lines.push(d).map((e) => ({ type: e.type, rv: e.object.metadata.resourceVersion }))));
    api.create(pod('after'));
    for (let i = 0; i < 100 && !seen.some((e) => e.type === 'BOOKMARK'); i++) await new Promise((r) => setTimeout(r, 10));
    res.destroy();
    assert.equal(seen[0]!.type, 'ADDED');
    assert.deepEqual(seen.find((e) => e.type === 'BOOKMARK'), { type: 'BOOKMARK', rv: String(store.currentRV()) });
    await assert.rejects(client.watch(pods, 'default', { resourceVersion: '1' }, () => undefined), (e: unknown) => e instanceof ApiError && e.code === 410 && /too old resource version/.test(e.message));
  });
});

test('a Job gets the selector the API server generates: its uid in the selector and the template, job-name too; manualSelector keeps the given one', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-job-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const api = new Api(new Store(join(dir, 'store.db')));
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } } as never, { system: true });
  const template = { metadata: { labels: { app: 'pi' } }, spec: { restartPolicy: 'Never', containers: [{ name: 'pi', image: 'perl' }] } };
  const job = api.create({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'pi', namespace: 'default' }, spec: { template } } as never) as unknown as { metadata: { uid: string }; spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } } };
  assert.deepEqual(job.spec.selector.matchLabels, { 'batch.kubernetes.io/controller-uid': job.metadata.uid });
  assert.deepEqual(job.spec.template.metadata.labels, { app: 'pi', 'job-name': 'pi', 'batch.kubernetes.io/job-name': 'pi', 'controller-uid': job.metadata.uid, 'batch.kubernetes.io/controller-uid': job.metadata.uid });
  const manual = api.create({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'm', namespace: 'default' }, spec: { manualSelector: true, selector: { matchLabels: { app: 'pi' } }, template } } as never) as unknown as { spec: { selector: unknown; template: { metadata: { labels: unknown } } } };
  assert.deepEqual(manual.spec.selector, { matchLabels: { app: 'pi' } });
  assert.deepEqual(manual.spec.template.metadata.labels, { app: 'pi' });
  assert.throws(() => api.create({ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'bad', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'other' } }, template } } as never), /selector/);
});

test("the API server's own Service: default/kubernetes at the range's first address, its endpoints the nodes' 6443, kept in step; a user's Service of that name is left alone", async (t) => {
  const { ensureKubernetesService } = await import('../src/daemon/kubernetes-service.ts');
  const dir = mkdtempSync(join(tmpdir(), 'kwt-ksvc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const api = new Api(new Store(join(dir, 'store.db')));
  api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } } as never, { system: true });
  const log: string[] = [];
  await ensureKubernetesService(new LocalClient(api), { serviceCIDR: '10.96.0.0/12' }, ['172.18.0.12', '172.18.0.11'], (l) => log.push(l));
  const svc = api.get({ kind: 'Service', namespace: 'default', name: 'kubernetes' }) as unknown as { spec: { clusterIP: string; ports: unknown[]; selector?: unknown } };
  assert.equal(svc.spec.clusterIP, '10.96.0.1');
  assert.deepEqual(svc.spec.ports, [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }]);
  assert.equal(svc.spec.selector, undefined);
  const slice = () => api.get({ kind: 'EndpointSlice', namespace: 'default', name: 'kubernetes' }) as unknown as { endpoints: Array<{ addresses: string[] }>; ports: unknown[]; metadata: { labels: Record<string, string> } };
  assert.deepEqual(slice().endpoints.map((e) => e.addresses[0]), ['172.18.0.11', '172.18.0.12']);
  assert.equal(slice().metadata.labels['kubernetes.io/service-name'], 'kubernetes');
  const endpoints = () => api.get({ kind: 'Endpoints', namespace: 'default', name: 'kubernetes' }) as unknown as { subsets: Array<{ addresses: Array<{ ip: string }> }> };
  assert.deepEqual(endpoints().subsets[0]!.addresses.map((a) => a.ip), ['172.18.0.11', '172.18.0.12']);
  // A restart with another node set: the endpoints follow, the Service stays.
  await ensureKubernetesService(new LocalClient(api), { serviceCIDR: '10.96.0.0/12' }, ['172.18.0.11'], (l) => log.push(l));
  assert.deepEqual(slice().endpoints.map((e) => e.addresses[0]), ['172.18.0.11']);
  assert.deepEqual(endpoints().subsets[0]!.addresses.map((a) => a.ip), ['172.18.0.11']);
  assert.equal(log.length, 0, log.join("\n"));
  // A user's own Service named kubernetes (with a selector) is not the API server's: left alone, and said so.
  const other = new Api(new Store(join(dir, 'other.db')));
  other.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } } as never, { system: true });
  other.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kubernetes', namespace: 'default' }, spec: { selector: { app: 'x' }, ports: [{ port: 80 }] } } as never);
  await ensureKubernetesService(new LocalClient(other), { serviceCIDR: '10.96.0.0/12' }, ['172.18.0.11'], (l) => log.push(l));
  assert.equal(other.tryGet({ kind: 'EndpointSlice', namespace: 'default', name: 'kubernetes' }), undefined);
  assert.match(log.join('\n'), /has a selector/);
});
