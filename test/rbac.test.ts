// RBAC kinds as the API server validates and defaults them (api/rbac.ts), and the deploy/
// manifests: every object in them is of a served kind and valid, so that
// `kubectl apply --dry-run=server -f deploy/` passes (the e2e in components-external.test.ts
// runs it with the real kubectl).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { defaultBinding, rbacErrors, rbacUpdateError } from '../src/api/rbac.ts';
import { typeOfManifest } from '../src/api/resources.ts';
import type { KubeObject } from '../src/api/types.ts';
import { validate } from '../src/api/validation.ts';
import { withDefaults } from '../src/api/defaults/index.ts';

const obj = (o: object) => o as unknown as KubeObject;
const fields = (o: object) => rbacErrors(obj(o)).map((e) => `${e.field}: ${e.detail}`);

test('ClusterRole rules: verbs required; resource rules need apiGroups and resources; nonResourceURLs only cluster-wide and alone', () => {
  assert.deepEqual(fields({ kind: 'ClusterRole', metadata: { name: 'system:node-proxier' }, rules: [{ apiGroups: [''], resources: ['services'], verbs: ['list'] }, { nonResourceURLs: ['/healthz'], verbs: ['get'] }] }), []);
  assert.deepEqual(fields({ kind: 'ClusterRole', metadata: { name: 'r' }, rules: [{ resources: ['pods'], verbs: [] }] }), [
    'rules[0].verbs: Required value: verbs must contain at least one value',
    'rules[0].apiGroups: Required value: resource rules must supply at least one api group',
  ]);
  assert.deepEqual(fields({ kind: 'Role', metadata: { name: 'r', namespace: 'x' }, rules: [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }] }), ['rules[0].nonResourceURLs: Invalid value: ["/metrics"]: namespaced rules cannot apply to non-resource URLs']);
  assert.deepEqual(fields({ kind: 'ClusterRole', metadata: { name: 'a/b' } }), [`metadata.name: Invalid value: "a/b": may not contain '/'`]);
});

test('bindings: roleRef group and kind, subjects by kind, a ServiceAccount of a ClusterRoleBinding names its namespace; roleRef cannot change', () => {
  const ref = { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' };
  assert.deepEqual(fields({ kind: 'ClusterRoleBinding', metadata: { name: 'b' }, roleRef: ref, subjects: [{ kind: 'ServiceAccount', name: 'sa', namespace: 'kube-system' }, { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'jane' }] }), []);
  assert.deepEqual(fields({ kind: 'ClusterRoleBinding', metadata: { name: 'b' }, roleRef: { ...ref, kind: 'Role' }, subjects: [{ kind: 'ServiceAccount', name: 'sa' }, { kind: 'Robot', name: 'r' }] }), [
    'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
    'subjects[0].namespace: Required value',
    'subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
  ]);
  assert.deepEqual(fields({ kind: 'RoleBinding', metadata: { name: 'b', namespace: 'x' }, roleRef: { ...ref, kind: 'Role' }, subjects: [{ kind: 'ServiceAccount', name: 'sa' }] }), []);
  assert.deepEqual(fields({ kind: 'RoleBinding', metadata: { name: 'b', namespace: 'x' } }), ['roleRef: Required value']);
  const b = obj({ kind: 'ClusterRoleBinding', metadata: { name: 'b' }, roleRef: ref });
  assert.equal(rbacUpdateError(b, b), undefined);
  assert.match(rbacUpdateError(b, obj({ ...b, roleRef: { ...ref, name: 'edit' } }))!.detail, /cannot change roleRef$/);
});

test("SetDefaults_Subject: a User's and a Group's apiGroup is RBAC's (then valid)", () => {
  const b = withDefaults(obj({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'b' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [{ kind: 'User', name: 'jane' }, { kind: 'ServiceAccount', name: 'sa', namespace: 'ns' }] }));
  assert.deepEqual((b as unknown as { subjects: unknown[] }).subjects, [{ kind: 'User', name: 'jane', apiGroup: 'rbac.authorization.k8s.io' }, { kind: 'ServiceAccount', name: 'sa', namespace: 'ns' }]);
  assert.deepEqual(validate(b), []);
  assert.equal(defaultBinding(obj({ kind: 'RoleBinding', metadata: { name: 'x' } })).kind, 'RoleBinding');
});

test('deploy/: every object is of a kind kubewire serves and valid after defaulting', () => {
  const dir = join(import.meta.dirname, '..', 'deploy');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 4, `manifests in ${dir}`);
  const kinds = new Set<string>();
  for (const f of files) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      const o = doc.toJS() as KubeObject;
      const rt = typeOfManifest(o.apiVersion, o.kind);
      assert.equal(typeof rt, 'object', `${f}: ${String(rt)}`);
      assert.deepEqual(validate(withDefaults(o)), [], `${f}: ${o.kind} ${o.metadata.name}`);
      kinds.add(o.kind);
    }
  }
  for (const k of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Deployment', 'Service', 'ConfigMap']) assert.ok(kinds.has(k), `deploy/ has a ${k}`);
});
