// The API server's defaults for batch/v1 Jobs (kubernetes/kubernetes
// pkg/apis/batch/v1/defaults.go): completions and parallelism 1 when neither is set,
// backoffLimit 6, NonIndexed, not suspended, and the template's spec (core.ts). Pure.

import { defaultTemplate } from './core.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- objects as clients send them

export function defaultJob<T extends Obj>(j: T): T {
  const s = j.spec;
  if (typeof s !== 'object' || s === null) return j;
  const neither = s.completions == null && s.parallelism == null;
  return {
    ...j,
    spec: {
      ...s,
      completions: neither ? 1 : s.completions,
      parallelism: s.parallelism ?? 1,
      backoffLimit: s.backoffLimit ?? 6,
      completionMode: s.completionMode || 'NonIndexed',
      suspend: s.suspend ?? false,
      podReplacementPolicy: s.podReplacementPolicy || (s.podFailurePolicy ? 'Failed' : 'TerminatingOrFailed'),
      template: defaultTemplate(s.template),
    },
  };
}
