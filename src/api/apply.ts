// kubectl apply's rules, kept by the API server so that a whole manifest goes in one
// transaction: the manifest is recorded in the last-applied-configuration annotation, an
// object whose manifest did not change is left alone (the server's defaults do not count),
// and a pod keeps the node the scheduler bound it to. Pure.

import type { KubeObject } from './types.ts';
import { now } from './types.ts';
import { withDefaults } from './defaults/index.ts';
import { entriesOf, recordUpdate } from './managed-fields.ts';

export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
/** The manager kubectl's client-side apply records its writes under. */
export const CLIENT_SIDE_APPLY = 'kubectl-client-side-apply';

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

/**
 * What to write for `manifest` over `current`: the annotated manifest, a pod's binding kept,
 * and the managedFields kubectl's client-side apply would leave (its manager owns what it
 * changed), so that kubectl's server-side apply meets the same owners after either.
 */
export function appliedObject(manifest: KubeObject, current: KubeObject | undefined): KubeObject {
  const obj = withLastApplied(manifest);
  obj.metadata = { ...obj.metadata, managedFields: recordUpdate(entriesOf(current), current, withDefaults(obj), obj.kind, CLIENT_SIDE_APPLY, obj.apiVersion, now()) };
  const bound = current?.kind === 'Pod' ? (current.spec as { nodeName?: string } | undefined)?.nodeName : undefined;
  const spec = obj.spec as { nodeName?: string } | undefined;
  if (bound && spec && !spec.nodeName) obj.spec = { ...spec, nodeName: bound }; // the scheduler's binding stays
  return obj;
}
