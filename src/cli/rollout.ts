// kubectl rollout history / undo / restart for Deployments, read from their ReplicaSets as
// kubectl does (each ReplicaSet is a revision, numbered by deployment.kubernetes.io/revision).
// Pure: the commands in kubectl.ts fetch the objects and send the patches.

import type { Deployment, PodTemplateSpec, ReplicaSet } from '../api/types.ts';
import { ClusterError } from '../cluster/cluster.ts';
import { revisionOf } from '../controllers/deployment.ts';

const CHANGE_CAUSE = 'kubernetes.io/change-cause';

/** The Deployment's ReplicaSets by revision, oldest first. */
export function revisions(d: Deployment, owned: ReplicaSet[]): ReplicaSet[] {
  return owned.filter((rs) => rs.metadata.ownerReferences?.some((r) => r.uid === d.metadata.uid) && revisionOf(rs) > 0).sort((a, b) => revisionOf(a) - revisionOf(b));
}

/** `rollout history`'s table, as kubectl prints it. */
export function historyTable(d: Deployment, owned: ReplicaSet[]): string {
  const rows = revisions(d, owned).map((rs) => `${String(revisionOf(rs)).padEnd(10)}${rs.metadata.annotations?.[CHANGE_CAUSE] ?? '<none>'}`);
  return [`deployment.apps/${d.metadata.name} `, 'REVISION  CHANGE-CAUSE', ...rows, ''].join('\n');
}

/**
 * The template `rollout undo [--to-revision=N]` puts back: that revision's (the previous one by
 * default) without the pod-template-hash label the ReplicaSet added.
 */
export function rollbackTemplate(d: Deployment, owned: ReplicaSet[], toRevision = 0): PodTemplateSpec {
  const all = revisions(d, owned);
  const target = toRevision ? all.find((rs) => revisionOf(rs) === toRevision) : all.at(-2);
  if (!target) throw new ClusterError(toRevision ? `unable to find the specified revision ${toRevision}` : `no rollout history found for deployment "${d.metadata.name}"`);
  const { 'pod-template-hash': _hash, ...labels } = target.spec.template.metadata?.labels ?? {};
  return { ...target.spec.template, metadata: { ...target.spec.template.metadata, labels } };
}

/** The patch `rollout restart` sends: a new restartedAt annotation on the pod template. */
export function restartPatch(at: Date): object {
  return { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': at.toISOString().replace(/\.\d+Z$/, 'Z') } } } } };
}
