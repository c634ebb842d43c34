// Discovery, OpenAPI v3 and server-side field validation: the pure builders and the API server
// answering them over its unix socket. The real kubectl v1.32 against a cluster (api-resources,
// explain, apply that validates, an unknown field, --validate=warn) is in api-clients.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PATCH_META } from '../src/api/patch-meta.ts';
import { APPLY_PATH, RESOURCES } from '../src/api/resources.ts';
import { Api } from '../src/apiserver/api.ts';
import { aggregatedVersionOf, apiGroupList, apiResourceList, discoveryFor } from '../src/apiserver/discovery.ts';
import { REVIEW_RESOURCES, review, reviewAt, userOfSubject } from '../src/apiserver/reviews.ts';
import { checkFields, checkItems, fieldValidationOf, unknownFieldsOf } from '../src/apiserver/field-validation.ts';
import { closure, definitionOf, openapiDocument, openapiRoot, schemas } from '../src/apiserver/openapi.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { StatusError } from '../src/apiserver/status.ts';
import { Store } from '../src/apiserver/store.ts';

/** What kubectl v1.32 sends for /api and /apis (fact sheet, section 2). */
const KUBECTL_ACCEPT = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';

type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const deployment = (spec: object = {}): Any => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', labels: { app: 'web', 'anything.example/goes': 'x' }, annotations: { a: 'b' } },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'web' } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 1 } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image: 'kubewire/echo', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }], resources: { limits: { cpu: '500m', memory: 1e9 } }, readinessProbe: { httpGet: { path: '/', port: 'http' } } }] },
    },
    ...spec,
  },
});

describe('discovery', () => {
  test("kubectl's Accept gets aggregated v2; v2beta1 alone gets v2beta1; plain JSON first gets the legacy form", () => {
    assert.equal(aggregatedVersionOf(KUBECTL_ACCEPT), 'v2');
    assert.equal(aggregatedVersionOf('application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json'), 'v2beta1');
    assert.equal(aggregatedVersionOf('application/json, */*'), undefined);
    assert.equal(aggregatedVersionOf(undefined), undefined);
    assert.equal(aggregatedVersionOf('application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList'), undefined);
  });

  test('aggregated /api: the core group, its resources with verbs, short names, categories and subresources', () => {
    const a = discoveryFor('/api', KUBECTL_ACCEPT)!;
    assert.equal(a.contentType, 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    const list = a.body as Any;
    assert.equal(list.kind, 'APIGroupDiscoveryList');
    assert.equal(list.apiVersion, 'apidiscovery.k8s.io/v2');
    assert.deepEqual(list.items.map((i: Any) => i.metadata.name), ['']);
    const v1 = list.items[0].versions[0];
    assert.equal(v1.version, 'v1');
    assert.equal(v1.freshness, 'Current');
    const pods = v1.resources.find((r: Any) => r.resource === 'pods');
    assert.deepEqual(pods.responseKind, { group: '', version: 'v1', kind: 'Pod' });
    assert.equal(pods.scope, 'Namespaced');
    assert.equal(pods.singularResource, 'pod');
    assert.deepEqual(pods.shortNames, ['po']);
    assert.deepEqual(pods.categories, ['all']);
    assert.ok(pods.verbs.includes('watch') && pods.verbs.includes('patch'));
    assert.deepEqual(pods.subresources.map((s: Any) => s.subresource), ['attach', 'exec', 'log', 'portforward', 'status']);
    assert.deepEqual(pods.subresources.find((s: Any) => s.subresource === 'exec').responseKind, { group: '', version: 'v1', kind: 'PodExecOptions' });
    const nodes = v1.resources.find((r: Any) => r.resource === 'nodes');
    assert.equal(nodes.scope, 'Cluster');
    assert.equal(nodes.categories, undefined, 'nodes are not in "all"');
    assert.equal(v1.resources.find((r: Any) => r.resource === 'configmaps').categories, undefined);
    const v2beta1 = discoveryFor('/api', 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList')!;
    assert.equal((v2beta1.body as Any).apiVersion, 'apidiscovery.k8s.io/v2beta1');
  });

  test('aggregated /apis: every served group, scale answering an autoscaling/v1 Scale; kubewire.dev is not an API group', () => {
    const list = discoveryFor('/apis', KUBECTL_ACCEPT)!.body as Any;
    const groups = list.items.map((i: Any) => i.metadata.name);
    const served = [...new Set([...RESOURCES, ...REVIEW_RESOURCES].filter((r) => r.group).map((r) => r.group))].sort();
    assert.deepEqual(groups, served);
    assert.ok(!groups.includes('kubewire.dev'));
    // The reviews (kubectl auth whoami / can-i) are create-only.
    const authz = list.items.find((i: Any) => i.metadata.name === 'authorization.k8s.io').versions[0].resources;
    assert.deepEqual(authz.map((r: Any) => [r.resource, r.verbs, r.scope]), [['selfsubjectaccessreviews', ['create'], 'Cluster'], ['selfsubjectrulesreviews', ['create'], 'Cluster']]);
    const apps = list.items.find((i: Any) => i.metadata.name === 'apps').versions[0].resources;
    const deploy = apps.find((r: Any) => r.resource === 'deployments');
    assert.deepEqual(deploy.shortNames, ['deploy']);
    assert.deepEqual(deploy.categories, ['all']);
    assert.deepEqual(deploy.subresources.find((s: Any) => s.subresource === 'scale').responseKind, { group: 'autoscaling', version: 'v1', kind: 'Scale' });
    assert.ok(deploy.subresources.some((s: Any) => s.subresource === 'status'));
  });

  test('legacy: APIVersions, APIGroupList, APIGroup and APIResourceList with subresources as pods/log', () => {
    assert.deepEqual((discoveryFor('/api', 'application/json, */*')!.body as Any).versions, ['v1']);
    const groups = apiGroupList() as Any;
    const apps = groups.groups.find((g: Any) => g.name === 'apps');
    assert.deepEqual(apps.preferredVersion, { groupVersion: 'apps/v1', version: 'v1' });
    assert.equal((discoveryFor('/apis/apps', undefined)!.body as Any).kind, 'APIGroup');
    const core = apiResourceList('', 'v1') as Any;
    assert.equal(core.groupVersion, 'v1');
    const names = core.resources.map((r: Any) => r.name);
    for (const n of ['pods', 'pods/log', 'pods/exec', 'pods/attach', 'pods/portforward', 'pods/status', 'services/status', 'namespaces']) assert.ok(names.includes(n), n);
    const pods = core.resources.find((r: Any) => r.name === 'pods');
    assert.deepEqual([pods.singularName, pods.namespaced, pods.kind, pods.shortNames, pods.categories], ['pod', true, 'Pod', ['po'], ['all']]);
    const scale = (apiResourceList('apps', 'v1') as Any).resources.find((r: Any) => r.name === 'deployments/scale');
    assert.deepEqual([scale.group, scale.version, scale.kind], ['autoscaling', 'v1', 'Scale']);
    assert.equal(discoveryFor('/apis/kubewire.dev/v1', undefined), undefined);
    assert.equal(discoveryFor('/apis/apps/v9', undefined), undefined);
    assert.equal(discoveryFor('/api/v1/pods', undefined), undefined, 'a resource path is not discovery');
  });
});

describe('OpenAPI v3', () => {
  test('every served kind has a generated schema with its group-version-kind and described fields', () => {
    const all = schemas();
    for (const rt of RESOURCES) {
      const s = all[definitionOf(rt)];
      assert.ok(s, `${definitionOf(rt)}: regenerate with node --import tsx scripts/gen-openapi.ts`);
      assert.deepEqual(s['x-kubernetes-group-version-kind'], [{ group: rt.group, kind: rt.kind, version: rt.version }]);
      assert.ok(typeof s.description === 'string' && (s.description as string).length > 10, `${rt.kind} has a description`);
    }
    const container = all['io.k8s.api.core.v1.Container'] as Any;
    assert.deepEqual(container.required, ['name']);
    assert.match(container.properties.image.description, /Container image name/);
    assert.deepEqual(container.properties.ports.items, { allOf: [{ $ref: '#/components/schemas/io.k8s.api.core.v1.ContainerPort' }], default: {} });
    assert.deepEqual(all['io.k8s.api.core.v1.ContainerPort']!.properties, { ...(all['io.k8s.api.core.v1.ContainerPort'] as Any).properties });
    assert.equal((all['io.k8s.api.core.v1.ContainerPort'] as Any).properties.containerPort.format, 'int32');
    assert.deepEqual((all['io.k8s.api.core.v1.ContainerPort'] as Any).properties.protocol.enum, ['SCTP', 'TCP', 'UDP']);
    assert.equal((all['io.k8s.api.core.v1.PodSpec'] as Any).properties.terminationGracePeriodSeconds.format, 'int64');
    assert.equal(all['io.k8s.apimachinery.pkg.util.intstr.IntOrString']!.format, 'int-or-string');
    assert.equal(all['io.k8s.apimachinery.pkg.apis.meta.v1.Time']!.format, 'date-time');
    assert.deepEqual((all['io.k8s.api.core.v1.Secret'] as Any).properties.data.additionalProperties, { type: 'string', format: 'byte' });
  });

  test("upstream's strategic-merge and apply extensions are on the served types", () => {
    const all = schemas() as Any;
    const containers = all['io.k8s.api.core.v1.PodSpec'].properties.containers;
    assert.equal(containers['x-kubernetes-patch-strategy'], 'merge');
    assert.equal(containers['x-kubernetes-patch-merge-key'], 'name');
    assert.equal(containers['x-kubernetes-list-type'], 'map');
    assert.deepEqual(containers['x-kubernetes-list-map-keys'], ['name']);
    assert.equal(all['io.k8s.api.core.v1.PodSpec'].properties.volumes['x-kubernetes-patch-strategy'], 'merge,retainKeys');
    assert.deepEqual(all['io.k8s.api.core.v1.Container'].properties.ports['x-kubernetes-list-map-keys'], ['containerPort', 'protocol']);
    assert.equal(all['io.k8s.api.core.v1.Container'].properties.ports['x-kubernetes-patch-merge-key'], 'containerPort');
    assert.deepEqual(all['io.k8s.api.core.v1.ServiceSpec'].properties.ports['x-kubernetes-list-map-keys'], ['port', 'protocol']);
    assert.equal(all['io.k8s.api.apps.v1.DeploymentSpec'].properties.strategy['x-kubernetes-patch-strategy'], 'retainKeys');
    assert.equal(all['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'].properties.ownerReferences['x-kubernetes-patch-merge-key'], 'uid');
    assert.equal(all['io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector']['x-kubernetes-map-type'], 'atomic');
    // EphemeralContainer inlines EphemeralContainerCommon: its fields carry the tags too.
    assert.equal(all['io.k8s.api.core.v1.EphemeralContainer'].properties.env['x-kubernetes-patch-merge-key'], 'name');
  });

  test("patch-meta.ts (what strategic merge and server-side apply use) agrees with upstream's tags in the generated schemas", () => {
    const all = schemas() as Any;
    for (const [def, fields] of Object.entries(PATCH_META)) {
      for (const [field, meta] of Object.entries(fields)) {
        const p = all[def]?.properties?.[field];
        assert.ok(p, `${def}.${field} is in the schemas`);
        const tags = { strategy: p['x-kubernetes-patch-strategy'], mergeKey: p['x-kubernetes-patch-merge-key'], listType: p['x-kubernetes-list-type'], listMapKeys: p['x-kubernetes-list-map-keys'], mapType: p['x-kubernetes-map-type'] };
        for (const k of Object.keys(tags) as Array<keyof typeof tags>) assert.deepEqual(meta[k], tags[k], `${def}.${field} ${k}`);
      }
    }
  });

  test('the root lists a document per served group version with a hash; each has patch operations kubectl verifies', () => {
    const root = openapiRoot() as Any;
    const gvs = Object.keys(root.paths);
    assert.ok(gvs.includes('api/v1') && gvs.includes('apis/apps/v1') && gvs.includes('apis/networking.k8s.io/v1'));
    assert.match(root.paths['apis/apps/v1'].serverRelativeURL, /^\/openapi\/v3\/apis\/apps\/v1\?hash=[0-9A-F]{128}$/);
    assert.equal(openapiDocument('apis/kubewire.dev/v1'), undefined);
    for (const gv of gvs) {
      const doc = openapiDocument(gv) as Any;
      const all = doc.components.schemas;
      // Every $ref resolves inside the document.
      const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[^"]+/g) ?? [];
      for (const r of refs) assert.ok(all[r.slice('#/components/schemas/'.length)], `${gv}: ${r} resolves`);
      // cli-runtime's query_param_verifier_v3: every PATCH of a kind takes fieldValidation in the query.
      const patches = Object.values(doc.paths).map((p: Any) => p.patch).filter(Boolean);
      assert.ok(patches.length > 0, gv);
      for (const p of patches) {
        assert.ok(p['x-kubernetes-group-version-kind']?.kind, `${gv}: ${p.operationId} has a GVK`);
        assert.ok(p.parameters.some((q: Any) => q.name === 'fieldValidation' && q.in === 'query'), `${gv}: ${p.operationId} takes fieldValidation`);
      }
    }
    const apps = openapiDocument('apis/apps/v1') as Any;
    const patch = apps.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}'].patch;
    assert.deepEqual(patch['x-kubernetes-group-version-kind'], { group: 'apps', kind: 'Deployment', version: 'v1' });
    assert.equal(patch.operationId, 'patchAppsV1NamespacedDeployment');
    assert.ok(patch.requestBody.content['application/strategic-merge-patch+json']);
    assert.deepEqual(apps.paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale'].patch['x-kubernetes-group-version-kind'], { group: 'autoscaling', kind: 'Scale', version: 'v1' });
    assert.ok(apps.components.schemas['io.k8s.api.autoscaling.v1.Scale']);
    assert.ok(!apps.components.schemas['io.k8s.api.core.v1.Service'], 'only what apps/v1 reaches');
    assert.deepEqual(closure(['io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector']), ['io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector', 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement']);
  });
});

describe('field validation', () => {
  test('a correct Deployment has no unknown fields: maps, quantities, int-or-string, FieldsV1 take what they hold', () => {
    const d = deployment();
    d.metadata.managedFields = [{ manager: 'kubectl', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:replicas': {} } } }];
    assert.deepEqual(unknownFieldsOf(d), []);
    assert.deepEqual(unknownFieldsOf({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { 'any.key': 'v' } }), []);
    assert.deepEqual(unknownFieldsOf({ apiVersion: 'v1', kind: 'Widget', spec: { foo: 1 } }), [], 'a kind with no schema is not checked here');
  });

  test("unknown fields are named by path as upstream's strict decoder names them", () => {
    const d = deployment({ replica: 3 });
    d.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
    d.spec.template.spec.containers[0].ports[0].hostport = 80;
    d.metadata.lables = {};
    assert.deepEqual(unknownFieldsOf(d).sort(), ['metadata.lables', 'spec.replica', 'spec.template.spec.containers[0].imagePullPolicyy', 'spec.template.spec.containers[0].ports[0].hostport']);
  });

  test('Strict: 400 BadRequest with upstream wording; Warn: the warning texts; Ignore: nothing; absent means Warn', () => {
    const d = deployment({ foo: 1 });
    assert.throws(
      () => checkFields(d, 'Strict'),
      (e: unknown) => e instanceof StatusError && e.code === 400 && e.reason === 'BadRequest' && e.message === 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo"',
    );
    assert.deepEqual(checkFields(d, 'Warn'), ['unknown field "spec.foo"']);
    assert.deepEqual(checkFields(d, 'Ignore'), []);
    assert.deepEqual(checkFields(deployment(), 'Strict'), []);
    assert.equal(fieldValidationOf(null), 'Warn');
    assert.equal(fieldValidationOf('Strict'), 'Strict');
    assert.throws(() => fieldValidationOf('strict'), (e: unknown) => e instanceof StatusError && e.code === 400 && /supported values: "Ignore", "Strict", "Warn"/.test(e.message));
    assert.deepEqual(checkItems([d], 'Warn'), ['Deployment "web": unknown field "spec.foo"']);
    assert.throws(
      () => checkItems([deployment(), d], 'Strict'),
      (e: unknown) => e instanceof StatusError && e.code === 400 && e.message.startsWith('Deployment in version "v1" cannot be handled as a Deployment') && (e.toStatus() as Any).details.index === 1,
    );
  });
});

/** One HTTP request over a unix socket: status, headers, parsed body. */
function call(socketPath: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Any }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path, headers: { ...(text ? { 'content-type': 'application/json' } : {}), ...headers }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const t = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = t;
        try {
          parsed = JSON.parse(t);
        } catch {
          // text bodies stay text
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(text);
  });
}

describe('the API server answers discovery, OpenAPI and fieldValidation', () => {
  let dir: string;
  let store: Store;
  let server: ApiServer;
  let sock: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kwt-disc-'));
    store = new Store(join(dir, 'store.db'));
    const api = new Api(store);
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

  test('GET /api and /apis negotiate aggregated or legacy discovery; /api/v1 lists resources', async () => {
    const agg = await call(sock, 'GET', '/apis?timeout=32s', undefined, { accept: KUBECTL_ACCEPT });
    assert.equal(agg.status, 200);
    assert.equal(agg.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    assert.equal(agg.body.kind, 'APIGroupDiscoveryList');
    const legacy = await call(sock, 'GET', '/api', undefined, { accept: 'application/json, */*' });
    assert.equal(legacy.headers['content-type'], 'application/json');
    assert.equal(legacy.body.kind, 'APIVersions');
    const v1 = await call(sock, 'GET', '/api/v1');
    assert.equal(v1.body.kind, 'APIResourceList');
    assert.equal((await call(sock, 'GET', '/apis/kubewire.dev/v1')).status, 404);
    // Every subresource listed with "get" answers a GET: status is the object itself.
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x' }] } };
    assert.equal((await call(sock, 'POST', '/api/v1/namespaces/default/pods', pod)).status, 201);
    const status = await call(sock, 'GET', '/api/v1/namespaces/default/pods/p/status');
    assert.equal(status.status, 200);
    assert.deepEqual([status.body.kind, status.body.metadata.name, status.body.status.phase], ['Pod', 'p', 'Pending']);
  });

  test('GET /openapi/v3 and a document by its hash; a stale hash is redirected', async () => {
    const root = await call(sock, 'GET', '/openapi/v3');
    const url = root.body.paths['apis/apps/v1'].serverRelativeURL as string;
    const doc = await call(sock, 'GET', url, undefined, { accept: 'application/json' });
    assert.equal(doc.status, 200);
    assert.equal(doc.headers['cache-control'], 'public, immutable');
    assert.equal(doc.body.openapi, '3.0.0');
    assert.ok(doc.body.components.schemas['io.k8s.api.apps.v1.Deployment']);
    const stale = await call(sock, 'GET', '/openapi/v3/apis/apps/v1?hash=00');
    assert.equal(stale.status, 301);
    assert.equal(stale.headers.location, url);
    assert.equal((await call(sock, 'GET', '/openapi/v3/apis/nothing/v1')).status, 404);
  });

  test('POST, PUT and PATCH honour fieldValidation; Strict changes nothing', async () => {
    const path = '/apis/apps/v1/namespaces/default/deployments';
    const rv = store.currentRV();
    const strict = await call(sock, 'POST', `${path}?fieldValidation=Strict`, deployment({ foo: 1 }));
    assert.equal(strict.status, 400);
    assert.deepEqual([strict.body.kind, strict.body.reason, strict.body.code], ['Status', 'BadRequest', 400]);
    assert.equal(strict.body.message, 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo"');
    assert.equal(store.currentRV(), rv, 'nothing written');
    const bad = await call(sock, 'POST', `${path}?fieldValidation=Bogus`, deployment());
    assert.equal(bad.status, 400);
    const warned = await call(sock, 'POST', path, deployment({ foo: 1 }));
    assert.equal(warned.status, 201, JSON.stringify(warned.body));
    const warnings = ([] as string[]).concat(warned.headers.warning ?? []).join('\n');
    assert.match(warnings, /299 - "unknown field \\"spec.foo\\""/);
    const current = (await call(sock, 'GET', `${path}/web`)).body;
    const put = await call(sock, 'PUT', `${path}/web?fieldValidation=Strict`, { ...current, spec: { ...current.spec, bar: true } });
    assert.equal(put.status, 400);
    assert.match(put.body.message, /unknown field "spec.bar"/);
    const ignored = await call(sock, 'PUT', `${path}/web?fieldValidation=Ignore`, { ...current, spec: { ...current.spec, bar: true } });
    assert.equal(ignored.status, 200);
    assert.equal(ignored.headers.warning === undefined || !String(ignored.headers.warning).includes('spec.bar'), true);
    const patch = await call(sock, 'PATCH', `${path}/web?fieldValidation=Strict`, { spec: { template: { spec: { containers: [{ name: 'web', image: 'x', imagee: 'y' }] } } } }, { 'content-type': 'application/merge-patch+json' });
    assert.equal(patch.status, 400);
    assert.match(patch.body.message, /unknown field "spec.template.spec.containers\[0\].imagee"/);
  });

  test("kubewire's own apply: Strict refuses naming the item's index, absent warns naming the object", async () => {
    const item = (name: string, extra: object = {}) => ({ ...deployment(extra), metadata: { name, namespace: 'default' } });
    const rv = store.currentRV();
    const strict = await call(sock, 'POST', `${APPLY_PATH}?fieldValidation=Strict`, { apiVersion: 'v1', kind: 'List', items: [item('a1'), item('a2', { templat: {} })] });
    assert.equal(strict.status, 400);
    assert.deepEqual([strict.body.reason, strict.body.details], ['BadRequest', { index: 1 }]);
    assert.match(strict.body.message, /strict decoding error: unknown field "spec.templat"/);
    assert.equal(store.currentRV(), rv, 'nothing applied');
    const warned = await call(sock, 'POST', APPLY_PATH, { apiVersion: 'v1', kind: 'List', items: [item('a3', { templat: {} })] });
    assert.equal(warned.status, 200, JSON.stringify(warned.body));
    assert.match(([] as string[]).concat(warned.headers.warning ?? []).join('\n'), /Deployment \\"a3\\": unknown field \\"spec.templat\\"/);
  });
});

test('reviews: who the requester is, and that kubewire (no RBAC) allows them everything; bodies that are not reviews are refused', () => {
  const [whoami, access, rules] = REVIEW_RESOURCES;
  const admin = { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] };
  assert.deepEqual(userOfSubject({ CN: 'kubernetes-admin', O: 'kubeadm:cluster-admins' }), admin);
  assert.deepEqual(userOfSubject({ CN: 'jane', O: ['dev', 'ops'] })?.groups, ['dev', 'ops', 'system:authenticated']);
  assert.equal(userOfSubject({}), undefined);
  assert.deepEqual((review(whoami!, { kind: 'SelfSubjectReview' }, admin) as Any).status.userInfo, admin);
  const yes = review(access!, { spec: { resourceAttributes: { verb: 'create', resource: 'pods', namespace: 'default' } } }, admin) as Any;
  assert.equal(yes.status.allowed, true);
  assert.deepEqual(yes.spec.resourceAttributes.resource, 'pods');
  assert.throws(() => review(access!, { spec: {} }, admin), (e: Any) => e.code === 422 && /resourceAttributes/.test(e.message));
  assert.deepEqual((review(rules!, { spec: { namespace: 'default' } }, admin) as Any).status.resourceRules, [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }]);
  assert.throws(() => review(rules!, { spec: {} }, admin), (e: Any) => e.code === 422 && /spec\.namespace/.test(e.message));
  assert.throws(() => review(whoami!, [], admin), (e: Any) => e.code === 400);
  assert.throws(() => review(whoami!, { kind: 'Pod' }, admin), (e: Any) => e.code === 400 && /SelfSubjectReview/.test(e.message));
  assert.equal(reviewAt('/apis/authorization.k8s.io/v1/selfsubjectaccessreviews')?.kind, 'SelfSubjectAccessReview');
  assert.equal(reviewAt('/apis/authorization.k8s.io/v1/namespaces/x/selfsubjectaccessreviews'), undefined);
});
