// The selector the API server generates for a Job on create (kubernetes/kubernetes
// pkg/registry/batch/job/strategy.go generateSelector): unless spec.manualSelector is true,
// the template gets the job-name and controller-uid labels (both the batch.kubernetes.io/
// and the legacy unprefixed forms) and the selector matches the new uid, so a Job's pods
// can only ever be its own. Labels the user set are kept; a conflict fails validation
// (the selector no longer matches the template). Pure: returns a new Job.

import type { Job } from './types.ts';

export const JOB_NAME_LABELS = ['job-name', 'batch.kubernetes.io/job-name'] as const;
export const CONTROLLER_UID_LABELS = ['controller-uid', 'batch.kubernetes.io/controller-uid'] as const;

export function withGeneratedSelector(job: Job, uid: string): Job {
  if (job.spec?.manualSelector === true || typeof job.spec?.template !== 'object' || job.spec.template === null) return job;
  const labels: Record<string, string> = { ...(job.spec.template.metadata?.labels ?? {}) };
  for (const l of JOB_NAME_LABELS) labels[l] ??= job.metadata.name;
  for (const l of CONTROLLER_UID_LABELS) labels[l] ??= uid;
  const matchLabels = { ...(job.spec.selector?.matchLabels ?? {}) };
  matchLabels['batch.kubernetes.io/controller-uid'] ??= uid;
  return {
    ...job,
    spec: { ...job.spec, selector: { ...job.spec.selector, matchLabels }, template: { ...job.spec.template, metadata: { ...job.spec.template.metadata, labels } } },
  };
}
