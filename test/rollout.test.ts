// kubewire rollout history / undo / restart, decided from a Deployment's ReplicaSets as kubectl
// does: the revisions in order, the template a rollback restores (without pod-template-hash),
// and the restart annotation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Deployment } from '../src/api/types.ts';
import { replicaSetOf } from '../src/controllers/deployment.ts';
import { historyTable, restartPatch, rollbackTemplate } from '../src/cli/rollout.ts';

const deployment = (image: string): Deployment => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'default', uid: 'd-uid' },
  spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image }] } } },
});

test('rollout history, undo and restart from the ReplicaSets', () => {
  const [v1, v2, v3] = ['a', 'b', 'c'].map((image, i) => replicaSetOf(deployment(image), i === 2 ? 2 : 0, i + 1));
  v2!.metadata.annotations!['kubernetes.io/change-cause'] = 'kubectl set image deployment/web web=b';
  const d = deployment('c');
  assert.equal(historyTable(d, [v3!, v1!, v2!]), 'deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         kubectl set image deployment/web web=b\n3         <none>\n');
  assert.deepEqual(rollbackTemplate(d, [v1!, v2!, v3!]), deployment('b').spec.template, 'the previous revision, without pod-template-hash');
  assert.equal(rollbackTemplate(d, [v1!, v2!, v3!], 1).spec.containers[0]!.image, 'a');
  assert.throws(() => rollbackTemplate(d, [v1!, v2!, v3!], 9), /unable to find the specified revision 9/);
  assert.throws(() => rollbackTemplate(d, [v3!]), /no rollout history found for deployment "web"/);
  const other = { ...v1!, metadata: { ...v1!.metadata, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'x', uid: 'other' }] } };
  assert.match(historyTable(d, [other]), /CHANGE-CAUSE\n$/, "another Deployment's ReplicaSets are not its history");
  assert.deepEqual(restartPatch(new Date('2026-12-06T10:00:00.5Z')), { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-06T10:00:00Z' } } } } });
});
