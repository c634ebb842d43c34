// Which Ingresses this controller serves (Ingress v1's IngressClass rules): one whose class
// names an IngressClass with our controller; one carrying the deprecated
// kubernetes.io/ingress.class annotation with such a class name; one with no class at all
// while our class is the cluster's default. Anything else belongs to another controller.

import type { Ingress, IngressClass } from '../api/types.ts';
import { DEFAULT_CLASS_ANNOTATION } from '../apiserver/admission.ts';
import { INGRESS_CLASS_ANNOTATION } from '../api/validation.ts';

export const CONTROLLER_NAME = 'kubewire.dev/ingress-controller';
/** The IngressClass `kubewire up` creates, marked as the default. */
export const DEFAULT_CLASS = 'kubewire';

export function servedBy(ing: Ingress, classes: IngressClass[], controller = CONTROLLER_NAME): boolean {
  const ours = (name: string | undefined) => classes.some((c) => c.metadata.name === name && c.spec.controller === controller);
  if (ing.spec.ingressClassName) return ours(ing.spec.ingressClassName);
  const annotated = ing.metadata.annotations?.[INGRESS_CLASS_ANNOTATION];
  if (annotated !== undefined) return ours(annotated);
  return classes.some((c) => c.spec.controller === controller && c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
}
