// Admission steps of the networking kinds, as upstream's API server does them on create and
// update: a Secret's stringData folded into data, and a class-less Ingress given the default
// IngressClass. Pure functions of the object and what the store holds.

import type { Ingress, IngressClass, Secret } from '../api/types.ts';
import { INGRESS_CLASS_ANNOTATION } from '../api/validation.ts';
import { StoreError } from './store.ts';

export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';

/** stringData is write-only: merged into data (base64) and dropped; type defaults to Opaque. */
export function admitSecret(secret: Secret): Secret {
  const data = { ...(secret.data ?? {}) };
  for (const [k, v] of Object.entries(secret.stringData ?? {})) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
  const out: Secret = { ...secret, type: secret.type || 'Opaque', data };
  delete out.stringData;
  return out;
}

/** The DefaultIngressClass admission plugin: a new Ingress naming no class gets the default one. */
export function admitIngress(ing: Ingress, classes: IngressClass[]): Ingress {
  if (ing.spec.ingressClassName || ing.metadata.annotations?.[INGRESS_CLASS_ANNOTATION]) return ing;
  const defaults = classes.filter((c) => c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
  if (defaults.length > 1) {
    throw new StoreError('Invalid', `Ingress ${JSON.stringify(ing.metadata.name)} is forbidden: ${defaults.length} default IngressClasses were found (${defaults.map((c) => c.metadata.name).join(', ')}), only 1 allowed`);
  }
  return defaults.length ? { ...ing, spec: { ...ing.spec, ingressClassName: defaults[0]!.metadata.name } } : ing;
}
