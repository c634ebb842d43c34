// kubectl apply's rules, kept by the API server so that a whole manifest goes in one
// transaction: the manifest is recorded in the last-applied-configuration annotation, an
// object whose manifest did not change is left alone (the server's defaults do not count),
// and a pod keeps the node the scheduler bound it to. Pure.

import type { KubeObject } from './types.ts';

export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

export type ApplyResult = 'created' | 'configured' | 'unchanged';

/** kubectl's record of what was applied: the manifest itself, in an annotation. */
export function withLastApplied(obj: KubeObject): KubeObject {
  const { [LAST_APPLIED]: _previous, ...annotations } = obj.metadata.annotations ?? {};
  const manifest = { ...obj, metadata: { ...obj.metadata, annotations: Object.keys(annotations).length ? annotations : undefined } };
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...annotations, [LAST_APPLIED]: `${JSON.stringify(manifest)}\n` } } };
}

/** Unchanged when the manifest is what was applied last time. */
export function sameManifest(current: KubeObject, next: KubeObject): boolean {
  return current.metadata.annotations?.[LAST_APPLIED] === next.metadata.annotations?.[LAST_APPLIED];
}

/** What to write for `manifest` over `current`: the annotated manifest, a pod's binding kept. */
export function appliedObject(manifest: KubeObject, current: KubeObject | undefined): KubeObject {
  const obj = withLastApplied(manifest);
  const bound = current?.kind === 'Pod' ? (current.spec as { nodeName?: string } | undefined)?.nodeName : undefined;
  const spec = obj.spec as { nodeName?: string } | undefined;
  if (bound && spec && !spec.nodeName) obj.spec = { ...spec, nodeName: bound }; // the scheduler's binding stays
  return obj;
}
