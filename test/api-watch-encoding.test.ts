// Watch events as Tables (kubectl get -w): each watcher's first event carries the column
// definitions, later ones a row only, and that row's text is encoded once per event and view
// and shared by every watcher (bench:api: 100 watchers each built and stringified it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../src/api/types.ts';
import { watchEncoder } from '../src/apiserver/views.ts';

const pod = (name: string, rv: string): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', resourceVersion: rv, creationTimestamp: new Date().toISOString() }, spec: { containers: [{ name: 'web', image: 'nginx' }] }, status: { phase: 'Running', podIP: '10.244.0.5' } }) as KubeObject;

test('Table watch events: column definitions on each watcher\'s first event, later rows shared and equal to a fresh encoding', () => {
  const a = watchEncoder({ as: 'Table', version: 'v1' }, 'Pod', 'Metadata');
  const b = watchEncoder({ as: 'Table', version: 'v1' }, 'Pod', 'Metadata');
  const first = pod('web-1', '10');
  for (const enc of [a, b]) assert.ok(JSON.parse(enc('ADDED', first)).columnDefinitions, 'the first event has the columns');
  const next = pod('web-1', '11');
  const ta = a('MODIFIED', next);
  const tb = b('MODIFIED', next);
  assert.equal(ta, tb);
  const table = JSON.parse(ta);
  assert.equal(table.columnDefinitions, undefined);
  assert.equal(table.metadata.resourceVersion, '11');
  assert.equal(table.rows[0].cells[0], 'web-1');
  assert.equal(table.rows[0].object.kind, 'PartialObjectMetadata');
  // Another view of the same event is its own encoding, not the shared one.
  const c = watchEncoder({ as: 'Table', version: 'v1beta1' }, 'Pod', 'Object');
  c('ADDED', first);
  const tc = JSON.parse(c('MODIFIED', next));
  assert.equal(tc.apiVersion, 'meta.k8s.io/v1beta1');
  assert.equal(tc.rows[0].object.kind, 'Pod');
  assert.equal(JSON.parse(a('MODIFIED', next)).apiVersion, 'meta.k8s.io/v1');
});
