// Every way of writing (issue 28 part 4): JSON merge patch, strategic merge patch with each
// directive on Pod/Deployment/Service shapes (and the patch client-side `kubectl apply`
// sends), JSON patch, server-side apply's managedFields, conflicts and force, the Update
// managers of create/PUT/PATCH, DeleteOptions and the garbage collector's decisions: pure,
// then over the API server's real unix-socket adapter (no root). The real kubectl 1.32 runs the
// same against a cluster in api-clients.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeFieldsV1, encodeFieldsV1, formatPath, members, recordUpdate } from '../src/api/managed-fields.ts';
import { metaAt } from '../src/api/patch-meta.ts';
import { serverSideApply } from '../src/api/patch/apply.ts';
import { PatchError, type JsonObject } from '../src/api/patch/errors.ts';
import { jsonPatch } from '../src/api/patch/json.ts';
import { mergePatch } from '../src/api/patch/merge.ts';
import { strategicMergePatch } from '../src/api/patch/strategic.ts';
import { Api } from '../src/apiserver/api.ts';
import { deleteAnswer, parseDeleteOptions, preconditionFailure } from '../src/apiserver/deletion.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { Store } from '../src/apiserver/store.ts';
import { collectGarbage, planCollection } from '../src/controllers/garbagecollector.ts';
import { startContext } from '../src/controllers/context.ts';
import { LocalClient } from '../src/apiserver/objects.ts';
import type { KubeObject } from '../src/api/types.ts';

const LAST = 'kubectl.kubernetes.io/last-applied-configuration';

const deployment = (): JsonObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'default', labels: { app: 'web' }, annotations: { [LAST]: '{"old":1}\n' } },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'web' } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        containers: [
          { name: 'web', image: 'nginx:1', ports: [{ containerPort: 80, protocol: 'TCP' }, { containerPort: 443, protocol: 'TCP' }], env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }], args: ['-a', '-b'] },
          { name: 'side', image: 'busybox' },
        ],
        tolerations: [{ key: 'x', operator: 'Exists' }],
      },
    },
  },
});

const fails = (code: number, re: RegExp) => (e: unknown) => e instanceof PatchError && e.code === code && re.test(e.message);
type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('patch metadata (upstream struct tags)', () => {
  test('merge keys and list types from a kind and a path', () => {
    assert.deepEqual(metaAt('Deployment', ['spec', 'template', 'spec', 'containers']), { strategy: 'merge', mergeKey: 'name', listType: 'map', listMapKeys: ['name'] });
    assert.equal(metaAt('Pod', ['spec', 'containers', 'ports']).mergeKey, 'containerPort');
    assert.deepEqual(metaAt('Pod', ['spec', 'containers', 'ports']).listMapKeys, ['containerPort', 'protocol']);
    assert.equal(metaAt('Pod', ['spec', 'containers', 'volumeMounts']).mergeKey, 'mountPath');
    assert.equal(metaAt('Pod', ['spec', 'volumes']).strategy, 'merge,retainKeys');
    assert.equal(metaAt('Service', ['spec', 'ports']).mergeKey, 'port');
    assert.equal(metaAt('Job', ['metadata', 'ownerReferences']).mergeKey, 'uid');
    assert.deepEqual(metaAt('ConfigMap', ['metadata', 'finalizers']), { strategy: 'merge', listType: 'set' });
    assert.equal(metaAt('Deployment', ['spec', 'strategy']).strategy, 'retainKeys');
    assert.deepEqual(metaAt('Pod', ['spec', 'tolerations']), { listType: 'atomic' });
    assert.deepEqual(metaAt('Pod', ['spec', 'nodeName']), {});
  });
});

describe('JSON merge patch (RFC 7386)', () => {
  test('objects merge, null deletes, lists replace', () => {
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { b: { c: null, e: 4 }, l: [3] }), { a: 1, b: { d: 3, e: 4 }, l: [3] });
  });
});

describe('strategic merge patch', () => {
  test("client-side apply's patch: new last-applied, image changed, a container port removed, element order kept", () => {
    // What kubectl 1.32 sends (fact sheet section 5) for a manifest whose port 443 went away and image changed.
    const patch = {
      metadata: { annotations: { [LAST]: '{"new":1}\n' } },
      spec: {
        template: {
          spec: {
            '$setElementOrder/containers': [{ name: 'web' }, { name: 'side' }],
            containers: [{ '$setElementOrder/ports': [{ containerPort: 80 }], image: 'nginx:2', name: 'web', ports: [{ $patch: 'delete', containerPort: 443 }] }],
          },
        },
      },
    };
    const out = strategicMergePatch(deployment(), patch, 'Deployment') as Any;
    const web = out.spec.template.spec.containers[0];
    assert.equal(out.metadata.annotations[LAST], '{"new":1}\n');
    assert.equal(web.image, 'nginx:2');
    assert.deepEqual(web.ports, [{ containerPort: 80, protocol: 'TCP' }]);
    assert.deepEqual(web.env, [{ name: 'A', value: '1' }, { name: 'B', value: '2' }], 'untouched lists stay');
    assert.deepEqual(out.spec.template.spec.containers.map((c: Any) => c.name), ['web', 'side']);
  });

  test('merge by key: a new item is appended, an existing one merged; $setElementOrder reorders', () => {
    const out = strategicMergePatch(deployment(), { spec: { template: { spec: { containers: [{ name: 'new', image: 'x' }, { name: 'web', env: [{ name: 'C', value: '3' }, { name: 'A', value: 'one' }] }] } } } }, 'Deployment') as Any;
    const names = out.spec.template.spec.containers.map((c: Any) => c.name);
    assert.deepEqual(names.sort(), ['new', 'side', 'web']);
    const web = out.spec.template.spec.containers.find((c: Any) => c.name === 'web');
    assert.deepEqual(web.env.map((e: Any) => `${e.name}=${e.value}`).sort(), ['A=one', 'B=2', 'C=3']);
    assert.equal(web.image, 'nginx:1');
    const ordered = strategicMergePatch(deployment(), { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'side' }, { name: 'web' }] } } } }, 'Deployment') as Any;
    assert.deepEqual(ordered.spec.template.spec.containers.map((c: Any) => c.name), ['side', 'web']);
  });

  test('lists without a merge strategy are replaced; null deletes a field', () => {
    const out = strategicMergePatch(deployment(), { spec: { replicas: null, template: { spec: { tolerations: [{ key: 'y', operator: 'Exists' }], containers: [{ name: 'web', args: ['-c'] }] } } } }, 'Deployment') as Any;
    assert.equal('replicas' in out.spec, false);
    assert.deepEqual(out.spec.template.spec.tolerations, [{ key: 'y', operator: 'Exists' }]);
    assert.deepEqual(out.spec.template.spec.containers[0].args, ['-c']);
  });

  test('$patch: replace on a list and on a map, $patch: delete on a map', () => {
    const replaced = strategicMergePatch(deployment(), { spec: { template: { spec: { containers: [{ $patch: 'replace' }, { name: 'only', image: 'o' }] } } } }, 'Deployment') as Any;
    assert.deepEqual(replaced.spec.template.spec.containers, [{ name: 'only', image: 'o' }]);
    const map = strategicMergePatch(deployment(), { metadata: { labels: { $patch: 'replace', tier: 'front' } } }, 'Deployment') as Any;
    assert.deepEqual(map.metadata.labels, { tier: 'front' });
    const gone = strategicMergePatch(deployment(), { metadata: { labels: { $patch: 'delete' } } }, 'Deployment') as Any;
    assert.deepEqual(gone.metadata.labels, {});
  });

  test("$retainKeys: a Deployment's strategy switched to Recreate drops rollingUpdate (what apply sends)", () => {
    const out = strategicMergePatch(deployment(), { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate', rollingUpdate: null } } }, 'Deployment') as Any;
    assert.deepEqual(out.spec.strategy, { type: 'Recreate' });
    const vol = strategicMergePatch({ spec: { volumes: [{ name: 'v', emptyDir: {} }] } }, { spec: { volumes: [{ name: 'v', $retainKeys: ['name', 'configMap'], configMap: { name: 'cm' } }] } }, 'Pod') as Any;
    assert.deepEqual(vol.spec.volumes, [{ name: 'v', configMap: { name: 'cm' } }]);
    assert.throws(() => strategicMergePatch(deployment(), { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate', rollingUpdate: { maxSurge: 1 } } } }, 'Deployment'), fails(422, /doesn't match retainKeys list at \.spec\.strategy: "rollingUpdate"/));
  });

  test('primitive lists: merge as a set, $deleteFromPrimitiveList', () => {
    const obj = { metadata: { name: 'c', finalizers: ['a', 'b'] } };
    assert.deepEqual((strategicMergePatch(obj, { metadata: { finalizers: ['c', 'a'] } }, 'ConfigMap') as Any).metadata.finalizers, ['c', 'a', 'b']);
    assert.deepEqual((strategicMergePatch(obj, { metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } }, 'ConfigMap') as Any).metadata.finalizers, ['b']);
  });

  test('Service ports merge by port; ownerReferences by uid', () => {
    const svc = { spec: { ports: [{ port: 80, targetPort: 8080 }, { port: 443, targetPort: 8443 }], selector: { app: 'web' } }, metadata: { ownerReferences: [{ uid: 'u1', name: 'a' }] } };
    const out = strategicMergePatch(svc, { spec: { ports: [{ port: 80, targetPort: 9090 }] }, metadata: { ownerReferences: [{ uid: 'u2', name: 'b' }] } }, 'Service') as Any;
    assert.deepEqual(out.spec.ports, [{ port: 80, targetPort: 9090 }, { port: 443, targetPort: 8443 }]);
    assert.deepEqual(out.metadata.ownerReferences.map((r: Any) => r.uid).sort(), ['u1', 'u2']);
  });

  test('malformed patches: 400 naming the field and what is wrong, the original untouched', () => {
    const d = deployment();
    const before = JSON.stringify(d);
    assert.throws(() => strategicMergePatch(d, [], 'Deployment'), fails(400, /must be a JSON object/));
    assert.throws(() => strategicMergePatch(d, { spec: { template: { spec: { containers: [{ image: 'x' }] } } } }, 'Deployment'), fails(400, /\.spec\.template\.spec\.containers: map: \{"image":"x"\} does not contain declared merge key: name/));
    assert.throws(() => strategicMergePatch(d, { metadata: { labels: { $patch: 'explode' } } }, 'Deployment'), fails(400, /unknown patch type: "explode"/));
    assert.throws(() => strategicMergePatch(d, { spec: { '$setElementOrder/x': 1 } }, 'Deployment'), fails(400, /setElementOrder/));
    assert.throws(() => strategicMergePatch(d, { spec: { $bogus: 1 } }, 'Deployment'), fails(400, /unknown directive "\$bogus"/));
    assert.equal(JSON.stringify(d), before);
  });
});

describe('JSON patch (RFC 6902)', () => {
  test('operations apply in order; a failed test or a missing path is 422; a non-list is 400', () => {
    const out = jsonPatch(deployment(), [{ op: 'replace', path: '/spec/replicas', value: 5 }, { op: 'add', path: '/metadata/labels/tier', value: 'front' }, { op: 'remove', path: '/spec/template/spec/containers/1' }]) as Any;
    assert.equal(out.spec.replicas, 5);
    assert.equal(out.metadata.labels.tier, 'front');
    assert.equal(out.spec.template.spec.containers.length, 1);
    assert.throws(() => jsonPatch(deployment(), [{ op: 'test', path: '/spec/replicas', value: 9 }]), fails(422, /operation 0 \(test \/spec\/replicas\): test failed/));
    assert.throws(() => jsonPatch(deployment(), [{ op: 'replace', path: '/spec/nope/x', value: 1 }]), fails(422, /operation 0 \(replace \/spec\/nope\/x\)/));
    assert.throws(() => jsonPatch(deployment(), { op: 'add' }), fails(400, /must be a list of operations/));
  });
});

describe('managedFields', () => {
  test("an Update's set in upstream's FieldsV1: maps it made own '.', list items keyed, sets by value", () => {
    const d = deployment();
    (d.metadata as Any).finalizers = ['x'];
    const [entry] = recordUpdate([], undefined, d, 'Deployment', 'kubectl-client-side-apply', 'apps/v1', 'T');
    assert.equal(entry!.operation, 'Update');
    const f = entry!.fieldsV1 as Any;
    assert.deepEqual(f['f:metadata']['f:labels'], { '.': {}, 'f:app': {} });
    assert.deepEqual(f['f:metadata']['f:finalizers'], { '.': {}, 'v:"x"': {} }, 'a set keeps its values');
    const web = f['f:spec']['f:template']['f:spec']['f:containers']['k:{"name":"web"}'];
    assert.deepEqual(Object.keys(web['f:ports']), ['.', 'k:{"containerPort":443,"protocol":"TCP"}', 'k:{"containerPort":80,"protocol":"TCP"}']);
    assert.deepEqual(web['f:args'], {}, 'an atomic list is one field');
    assert.equal(f['f:spec']['.'], undefined, 'a struct is not owned itself');
    assert.equal(f['f:metadata']['f:name'], undefined, 'name, namespace, uid... belong to no one');
    assert.deepEqual(decodeFieldsV1(encodeFieldsV1(decodeFieldsV1(f))), decodeFieldsV1(f));
  });

  test('a later Update takes the fields it changed from the others; removed fields belong to no one', () => {
    const d = deployment();
    const first = recordUpdate([], undefined, d, 'Deployment', 'a', 'apps/v1', 'T1');
    const next = structuredClone(d) as Any;
    next.spec.replicas = 5;
    delete next.metadata.labels;
    const entries = recordUpdate(first, d, next, 'Deployment', 'b', 'apps/v1', 'T2');
    assert.deepEqual(entries.map((e) => e.manager), ['a', 'b']);
    const a = decodeFieldsV1(entries[0]!.fieldsV1);
    assert.equal([...a].some((p) => p.includes('f:replicas')), false);
    assert.equal([...a].some((p) => p.includes('f:labels') && p.startsWith('f:metadata')), false);
    assert.deepEqual([...decodeFieldsV1(entries[1]!.fieldsV1)], ['f:spec\nf:replicas']);
    assert.equal(formatPath('f:spec\nf:template\nf:spec\nf:containers\nk:{"name":"web"}\nf:image'), '.spec.template.spec.containers[name="web"].image');
  });
});

describe('server-side apply', () => {
  const manifest = (over: Any = {}): JsonObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', labels: { app: 'web', ...(over.labels ?? {}) } },
    spec: { replicas: over.replicas ?? 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: over.image ?? 'nginx:1', ports: over.ports ?? [{ containerPort: 80 }] }] } } },
  });
  const apply = (live: JsonObject | undefined, config: JsonObject, manager = 'kubectl', force = false) => serverSideApply({ live, config, kind: 'Deployment', manager, apiVersion: 'apps/v1', force, time: '2026-01-01T00:00:00Z' });

  test('creates: the applier owns what it applied, ports keyed with their defaulted protocol', () => {
    const obj = apply(undefined, manifest()) as Any;
    assert.equal(obj.spec.replicas, 2);
    assert.equal(obj.metadata.managedFields.length, 1);
    const e = obj.metadata.managedFields[0];
    assert.deepEqual([e.manager, e.operation, e.apiVersion, e.fieldsType], ['kubectl', 'Apply', 'apps/v1', 'FieldsV1']);
    const web = e.fieldsV1['f:spec']['f:template']['f:spec']['f:containers']['k:{"name":"web"}'];
    assert.deepEqual(web, { '.': {}, 'f:image': {}, 'f:name': {}, 'f:ports': { 'k:{"containerPort":80,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {} } } });
  });

  test("a field another manager owns and the apply changes is a 409 in upstream's words; the same value is shared", () => {
    const live = manifest() as Any;
    live.metadata.managedFields = recordUpdate([], undefined, live, 'Deployment', 'kubectl-client-side-apply', 'apps/v1', 'T');
    assert.throws(
      () => apply(live, manifest({ replicas: 3 })),
      (e: unknown) => e instanceof PatchError && e.code === 409 && e.reason === 'Conflict' && e.message === 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas' && e.causes?.[0]?.field === '.spec.replicas',
    );
    assert.throws(
      () => apply(live, manifest({ replicas: 3, image: 'nginx:2' })),
      (e: unknown) => e instanceof PatchError && e.message === 'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name="web"].image',
    );
    const shared = apply(live, manifest()) as Any;
    assert.deepEqual(shared.metadata.managedFields.map((e: Any) => `${e.manager}/${e.operation}`), ['kubectl/Apply', 'kubectl-client-side-apply/Update']);
  });

  test('force=true takes the field: the other manager loses it', () => {
    const live = manifest() as Any;
    live.metadata.managedFields = recordUpdate([], undefined, live, 'Deployment', 'kubectl-client-side-apply', 'apps/v1', 'T');
    const obj = apply(live, manifest({ replicas: 3 }), 'kubectl', true) as Any;
    assert.equal(obj.spec.replicas, 3);
    const other = decodeFieldsV1(obj.metadata.managedFields.find((e: Any) => e.manager === 'kubectl-client-side-apply').fieldsV1);
    assert.equal(other.has('f:spec\nf:replicas'), false);
    assert.equal(other.has('f:spec\nf:template\nf:spec\nf:containers\nk:{"name":"web"}\nf:image'), true);
  });

  test('what the applier stops applying goes, unless another manager owns it', () => {
    const first = apply(undefined, manifest({ labels: { tier: 'front' }, ports: [{ containerPort: 80 }, { containerPort: 443 }] }));
    const second = apply(first, manifest()) as Any;
    assert.deepEqual(second.metadata.labels, { app: 'web' });
    assert.deepEqual(second.spec.template.spec.containers[0].ports, [{ containerPort: 80 }]);
    // Another applier owns the label too: it stays.
    const both = apply(first, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', labels: { tier: 'front' } } }, 'other') as Any;
    const third = apply(both, manifest()) as Any;
    assert.equal(third.metadata.labels.tier, 'front');
  });

  test('an object made before any apply is owned by before-first-apply', () => {
    const live = manifest();
    assert.throws(() => apply(live, manifest({ replicas: 4 })), (e: unknown) => e instanceof PatchError && /conflict with "before-first-apply" using apps\/v1: \.spec\.replicas/.test(e.message));
  });

  test('members of a keyed list item that omits a key field without default: 422', () => {
    assert.throws(() => members({ spec: { template: { spec: { containers: [{ image: 'x' }] } } } }, 'Deployment'), fails(422, /omits key field "name"/));
  });
});

describe('DeleteOptions and the garbage collector (decisions)', () => {
  test('options from the body and the query; bad ones are 422', () => {
    assert.deepEqual(parseDeleteOptions({ kind: 'DeleteOptions', propagationPolicy: 'Foreground', gracePeriodSeconds: 5, preconditions: { uid: 'u' } }, new URLSearchParams()), { gracePeriodSeconds: 5, propagationPolicy: 'Foreground', preconditions: { uid: 'u' } });
    assert.deepEqual(parseDeleteOptions(undefined, new URLSearchParams('propagationPolicy=Orphan&gracePeriodSeconds=0')), { gracePeriodSeconds: 0, propagationPolicy: 'Orphan' });
    assert.deepEqual(parseDeleteOptions({ orphanDependents: true }, new URLSearchParams()), { propagationPolicy: 'Orphan' });
    assert.throws(() => parseDeleteOptions({ propagationPolicy: 'Sideways' }, new URLSearchParams()), /propagationPolicy: Unsupported value: "Sideways": supported values: "Foreground", "Background", "Orphan"/);
  });

  test('preconditions in upstream words; the answer is a Status once the object is gone', () => {
    const obj = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', uid: 'u1', resourceVersion: '7' } } as KubeObject;
    assert.equal(preconditionFailure(obj, { uid: 'u2' }), 'Operation cannot be fulfilled on deployments.apps "web": Precondition failed: UID in precondition: u2, UID in object meta: u1');
    assert.equal(preconditionFailure(obj, { resourceVersion: '6' }), 'Operation cannot be fulfilled on deployments.apps "web": Precondition failed: ResourceVersion in precondition: 6, ResourceVersion in object meta: 7');
    assert.equal(preconditionFailure(obj, { uid: 'u1', resourceVersion: '7' }), undefined);
    assert.deepEqual(deleteAnswer({ object: obj, gone: true }), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: 'web', group: 'apps', kind: 'deployments', uid: 'u1' } });
    assert.equal(deleteAnswer({ object: obj, gone: false }), obj);
  });

  test('background: objects all of whose owners are gone; foreground: dependents first, the owner when none blocks', () => {
    const o = (name: string, uid: string, owners: string[] = [], extra: Any = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, uid, ownerReferences: owners.map((u) => ({ apiVersion: 'v1', kind: 'ConfigMap', name: u, uid: u, blockOwnerDeletion: true })), ...extra } }) as KubeObject;
    const plan = planCollection([o('a', 'a'), o('b', 'b', ['a']), o('c', 'c', ['gone']), o('d', 'd', ['gone', 'a'])]);
    assert.deepEqual(plan.delete.map((d) => `${d.object.metadata.name}:${d.policy}`), ['c:Background']);
    const fg = planCollection([o('a', 'a', [], { deletionTimestamp: 'T', finalizers: ['foregroundDeletion'] }), o('b', 'b', ['a'])]);
    assert.deepEqual(fg.delete.map((d) => `${d.object.metadata.name}:${d.policy}`), ['b:Foreground']);
    assert.deepEqual([fg.finish.length, fg.waiting], [0, 1]);
    const done = planCollection([o('a', 'a', [], { deletionTimestamp: 'T', finalizers: ['foregroundDeletion'] })]);
    assert.deepEqual(done.finish.map((f) => f.metadata.name), ['a']);
  });
});

/** HTTP over the adapter's unix socket: status, Status/object body. */
function call(socketPath: string, method: string, path: string, body?: unknown, contentType = 'application/json', raw?: string): Promise<{ status: number; body: Any }> {
  return new Promise((resolve, reject) => {
    const text = raw ?? (body === undefined ? undefined : JSON.stringify(body));
    const req = request({ socketPath, method, path, headers: { 'content-type': contentType, 'user-agent': 'kubectl/v1.32.0 (linux/amd64)', ...(text === undefined ? {} : { 'content-length': Buffer.byteLength(text) }) } }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: data ? JSON.parse(data) : undefined }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

describe('every way of writing over the API server (unix socket, no root)', () => {
  let dir: string;
  let store: Store;
  let api: Api;
  let server: ApiServer;
  let sock: string;
  const D = '/apis/apps/v1/namespaces/default/deployments';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kwt-patch-'));
    store = new Store(join(dir, 'store.db'));
    api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    server = new ApiServer(api);
    sock = join(dir, 'api.sock');
    await server.listen(sock);
  });
  after(async () => {
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('create records an Update manager; each PATCH type by Content-Type; 415 otherwise; a bad patch changes nothing', async () => {
    const m = manifestJson();
    const created = await call(sock, 'POST', `${D}?fieldManager=kubectl-client-side-apply`, m);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.metadata.managedFields.map((e: Any) => `${e.manager}/${e.operation}`), ['kubectl-client-side-apply/Update']);
    const owned = created.body.metadata.managedFields[0].fieldsV1['f:spec'];
    assert.ok(owned['f:progressDeadlineSeconds'] && owned['f:template']['f:spec']['f:containers']['k:{"name":"web"}']['f:imagePullPolicy'], 'the defaults the server filled in are the creator\'s, as upstream');

    const smp = await call(sock, 'PATCH', `${D}/web?fieldManager=kubectl-patch`, { spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:2' }] } } } }, 'application/strategic-merge-patch+json');
    assert.equal(smp.status, 200, JSON.stringify(smp.body));
    assert.equal(smp.body.spec.template.spec.containers[0].image, 'nginx:2');
    assert.deepEqual(smp.body.spec.template.spec.containers[0].ports.map((x: Any) => x.containerPort), [80], 'merged, not replaced');
    assert.deepEqual(smp.body.metadata.managedFields.map((e: Any) => e.manager), ['kubectl-client-side-apply', 'kubectl-patch']);

    const merge = await call(sock, 'PATCH', `${D}/web`, { metadata: { labels: { tier: 'front' } } }, 'application/merge-patch+json');
    assert.equal(merge.body.metadata.labels.tier, 'front');
    const json = await call(sock, 'PATCH', `${D}/web`, [{ op: 'replace', path: '/spec/replicas', value: 3 }], 'application/json-patch+json');
    assert.equal(json.body.spec.replicas, 3);

    const rv = json.body.metadata.resourceVersion;
    const failed = await call(sock, 'PATCH', `${D}/web`, [{ op: 'replace', path: '/spec/replicas', value: 9 }, { op: 'test', path: '/spec/replicas', value: 1 }], 'application/json-patch+json');
    assert.equal(failed.status, 422);
    assert.equal(failed.body.kind, 'Status');
    assert.match(failed.body.message, /operation 1 \(test \/spec\/replicas\): test failed/);
    const bad = await call(sock, 'PATCH', `${D}/web`, undefined, 'application/strategic-merge-patch+json', '{"spec": ');
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /the patch is not JSON/);
    const other = await call(sock, 'PATCH', `${D}/web`, { a: 1 }, 'text/plain');
    assert.equal(other.status, 415);
    assert.equal(other.body.reason, 'UnsupportedMediaType');
    const dry = await call(sock, 'PATCH', `${D}/web?dryRun=All`, { spec: { replicas: 4 } }, 'application/strategic-merge-patch+json');
    assert.deepEqual([dry.body.spec.replicas, dry.body.metadata.resourceVersion], [4, rv], 'a dry run answers the result with the live resourceVersion');
    assert.equal(api.get({ kind: 'Deployment', namespace: 'default', name: 'web' }).spec && (api.get({ kind: 'Deployment', namespace: 'default', name: 'web' }).spec as Any).replicas, 3);
    const noop = await call(sock, 'PATCH', `${D}/web`, { spec: { replicas: 3 } }, 'application/strategic-merge-patch+json');
    assert.equal(noop.body.metadata.resourceVersion, rv, 'a patch that changes nothing writes nothing');
    const stale = await call(sock, 'PATCH', `${D}/web`, { metadata: { resourceVersion: '1' }, spec: { replicas: 7 } }, 'application/merge-patch+json');
    assert.equal(stale.status, 409);
    assert.equal(api.get({ kind: 'Deployment', namespace: 'default', name: 'web' }).metadata.resourceVersion, rv, 'nothing changed');
  });

  test('server-side apply: creates when absent (201), 409 on a conflict, force takes it, apply without fieldManager is 400', async () => {
    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: "1"\n';
    const made = await call(sock, 'PATCH', '/api/v1/namespaces/default/configmaps/cfg?fieldManager=kubectl&force=false', undefined, 'application/apply-patch+yaml', yaml);
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.deepEqual(made.body.metadata.managedFields[0].fieldsV1, { 'f:data': { 'f:a': {} } });
    const upd = await call(sock, 'PATCH', '/api/v1/namespaces/default/configmaps/cfg?fieldManager=editor', { data: { a: '2' } }, 'application/merge-patch+json');
    assert.equal(upd.status, 200);
    const conflict = await call(sock, 'PATCH', '/api/v1/namespaces/default/configmaps/cfg?fieldManager=kubectl', undefined, 'application/apply-patch+yaml', yaml);
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.message, 'Apply failed with 1 conflict: conflict with "editor" using v1: .data.a');
    assert.deepEqual(conflict.body.details.causes, [{ type: 'FieldManagerConflict', message: 'conflict with "editor" using v1', field: '.data.a' }]);
    const forced = await call(sock, 'PATCH', '/api/v1/namespaces/default/configmaps/cfg?fieldManager=kubectl&force=true', undefined, 'application/apply-patch+yaml', yaml);
    assert.equal(forced.status, 200);
    assert.equal(forced.body.data.a, '1');
    assert.deepEqual(forced.body.metadata.managedFields.map((e: Any) => e.manager), ['kubectl']);
    const noManager = await call(sock, 'PATCH', '/api/v1/namespaces/default/configmaps/cfg', undefined, 'application/apply-patch+yaml', yaml);
    assert.equal(noManager.status, 400);
  });

  test('DELETE: preconditions 409; Orphan keeps dependents without the owner reference; Foreground waits for them; Background collects them', async () => {
    const owner = (await call(sock, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner' } })).body;
    const dep = (name: string, o = owner) => call(sock, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: o.metadata.name, uid: o.metadata.uid, blockOwnerDeletion: true }] } });
    await dep('dep1');
    const pre = await call(sock, 'DELETE', '/api/v1/namespaces/default/configmaps/owner', { preconditions: { uid: 'not-it' } });
    assert.equal(pre.status, 409, `got ${JSON.stringify(pre.body)}`);
    assert.match(pre.body.message, /Precondition failed: UID in precondition: not-it/);
    const orphan = await call(sock, 'DELETE', '/api/v1/namespaces/default/configmaps/owner', { propagationPolicy: 'Orphan' });
    assert.equal(orphan.status, 200);
    assert.equal(orphan.body.status, 'Success');
    assert.equal(api.get({ kind: 'ConfigMap', namespace: 'default', name: 'dep1' }).metadata.ownerReferences, undefined);

    const owner2 = (await call(sock, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner2' } })).body;
    await dep('dep2', owner2);
    const fg = await call(sock, 'DELETE', '/api/v1/namespaces/default/configmaps/owner2', { propagationPolicy: 'Foreground' });
    assert.equal(fg.status, 200);
    assert.ok(fg.body.metadata.deletionTimestamp);
    assert.deepEqual(fg.body.metadata.finalizers, ['foregroundDeletion']);
    const gcContext = await startContext(new LocalClient(api, { shareObjects: true }));
    await collectGarbage(gcContext); // deletes dep2
    assert.equal(api.tryGet({ kind: 'ConfigMap', namespace: 'default', name: 'dep2' }), undefined);
    assert.ok(api.tryGet({ kind: 'ConfigMap', namespace: 'default', name: 'owner2' }), 'the owner waits for the next pass');
    await collectGarbage(gcContext);
    assert.equal(api.tryGet({ kind: 'ConfigMap', namespace: 'default', name: 'owner2' }), undefined);

    const owner3 = (await call(sock, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owner3' } })).body;
    await dep('dep3', owner3);
    const bg = await call(sock, 'DELETE', '/api/v1/namespaces/default/configmaps/owner3', { propagationPolicy: 'Background' });
    assert.equal(bg.body.status, 'Success');
    await collectGarbage(gcContext);
    assert.equal(api.tryGet({ kind: 'ConfigMap', namespace: 'default', name: 'dep3' }), undefined);
    gcContext.stop();
  });

  test('status and scale subresources take every patch type: conditions merge by type, a JSON patch scales', async () => {
    const P = '/api/v1/namespaces/default/pods';
    assert.equal((await call(sock, 'POST', P, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'i' }] } })).status, 201);
    for (const type of ['Ready', 'Initialized']) {
      const r = await call(sock, 'PATCH', `${P}/p/status`, { status: { conditions: [{ type, status: 'True' }] } }, 'application/strategic-merge-patch+json');
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    assert.deepEqual((api.get({ kind: 'Pod', namespace: 'default', name: 'p' }).status as Any).conditions.map((c: Any) => c.type).sort(), ['Initialized', 'Ready']);
    const merged = await call(sock, 'PATCH', `${P}/p/status`, { status: { conditions: [{ type: 'Other', status: 'True' }] } }, 'application/merge-patch+json');
    assert.deepEqual(merged.body.status.conditions.map((c: Any) => c.type), ['Other'], 'a JSON merge patch replaces the list');
    const scaled = await call(sock, 'PATCH', `${D}/web/scale`, [{ op: 'replace', path: '/spec/replicas', value: 4 }], 'application/json-patch+json');
    assert.deepEqual([scaled.status, scaled.body.kind, scaled.body.spec.replicas], [200, 'Scale', 4]);
    const applied = await call(sock, 'PATCH', `${D}/web/scale?fieldManager=x`, undefined, 'application/apply-patch+yaml', 'spec: {replicas: 1}');
    assert.equal(applied.status, 415);
  });

  test("kubewire's own apply records kubectl's client-side-apply manager, so kubectl's server-side apply meets the same owners", async () => {
    api.apply([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kw', namespace: 'default' }, data: { a: '1' } }]);
    const cm = api.get({ kind: 'ConfigMap', namespace: 'default', name: 'kw' });
    assert.deepEqual((cm.metadata.managedFields as Any[]).map((e) => `${e.manager}/${e.operation}`), ['kubectl-client-side-apply/Update']);
    const ssa = await call(sock, 'PATCH', '/api/v1/namespaces/default/configmaps/kw?fieldManager=kubectl', undefined, 'application/apply-patch+yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kw}\ndata: {a: "2"}\n');
    assert.equal(ssa.status, 409);
    assert.equal(ssa.body.message, 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.a');
  });

  test('a user finalizer holds the object; removing it by PATCH lets it go', async () => {
    await call(sock, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'held', finalizers: ['example.com/hold'] } });
    const del = await call(sock, 'DELETE', '/api/v1/namespaces/default/configmaps/held');
    assert.ok(del.body.metadata?.deletionTimestamp, JSON.stringify(del.body));
    const patched = await call(sock, 'PATCH', '/api/v1/namespaces/default/configmaps/held', { metadata: { finalizers: null } }, 'application/merge-patch+json');
    assert.equal(patched.status, 200);
    assert.equal(api.tryGet({ kind: 'ConfigMap', namespace: 'default', name: 'held' }), undefined);
  });
});

function manifestJson(): JsonObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', labels: { app: 'web' } },
    spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1', ports: [{ containerPort: 80 }] }] } } },
  };
}
