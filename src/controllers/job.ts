// The Job controller: pods that run to completion, at most `parallelism` at a time, until
// `completions` of them succeeded (Complete), or more than `backoffLimit` failed (Failed,
// BackoffLimitExceeded; with restartPolicy OnFailure the containers' restarts count as
// failures, as upstream counts them); a failed pod's replacement waits 10 s, doubled per
// failure (upstream's back-off). Without completions, the first success ends the Job
// once no pod runs (a work queue). Finished pods are kept for their logs; once the Job
// finished, the pods still running are deleted. Pods carry the job-name and controller-uid
// labels.

import type { Condition, Job, JobStatus, Pod } from '../api/types.ts';
import { now } from '../api/types.ts';
import type { EventRecorder } from '../apiserver/events.ts';
import { updateStatusWithRetry } from '../apiserver/retry.ts';
import { ignoreNotFound, isReady, podOfTemplate, type Requeue } from './deployment.ts';
import { lister, rt, type ControllerContext } from './context.ts';

export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';
export const CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid';

export function jobPod(job: Job): Pod {
  const uid = job.metadata.uid!;
  return podOfTemplate({ apiVersion: 'batch/v1', kind: 'Job', metadata: job.metadata }, job.spec.template, { generateName: `${job.metadata.name}-`, labels: { [JOB_NAME_LABEL]: job.metadata.name, 'job-name': job.metadata.name, [CONTROLLER_UID_LABEL]: uid, 'controller-uid': uid } });
}

/** Upstream's back-off before a failed pod's replacement: 10 s, doubled per failure, at most 6 min. */
export const FAILURE_BACKOFF_MS = 10_000;
export const MAX_FAILURE_BACKOFF_MS = 360_000;

/** When a failed pod finished (its containers' end, else its last condition's change). */
function failedAt(p: Pod): number {
  const times = [...(p.status?.containerStatuses ?? []).map((c) => c.state.terminated?.finishedAt), ...(p.status?.conditions ?? []).map((c) => c.lastTransitionTime)].filter((t): t is string => Boolean(t)).map(Date.parse);
  return times.length ? Math.max(...times) : 0;
}

export interface JobPlan {
  create: number;
  /** Pods are wanted but the failure back-off holds them: look again after this long. */
  retryInMs?: number;
  delete: Pod[];
  status: JobStatus;
  /** The condition the Job reached in this sync, if any (for its event). */
  finished?: 'Complete' | 'Failed';
}

function finishedAs(job: Job): 'Complete' | 'Failed' | undefined {
  const c = job.status?.conditions ?? [];
  if (c.some((x) => x.type === 'Complete' && x.status === 'True')) return 'Complete';
  if (c.some((x) => x.type === 'Failed' && x.status === 'True')) return 'Failed';
  return undefined;
}

/** What to do next for a Job given the pods it owns, at `stamp` (pure). */
export function planJob(job: Job, owned: Pod[], stamp: string, nowMs = Date.parse(stamp)): JobPlan {
  const parallelism = job.spec.parallelism ?? 1;
  const completions = job.spec.completions ?? (job.spec.parallelism === undefined ? 1 : undefined);
  const backoffLimit = job.spec.backoffLimit ?? 6;
  const active = owned.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
  const succeeded = owned.filter((p) => p.status?.phase === 'Succeeded').length;
  const failed = owned.filter((p) => p.status?.phase === 'Failed').length;
  const restarts = job.spec.template.spec.restartPolicy === 'OnFailure' ? active.reduce((n, p) => n + (p.status?.containerStatuses ?? []).reduce((m, c) => m + c.restartCount, 0), 0) : 0;
  const status: JobStatus = {
    active: active.length,
    ready: active.filter(isReady).length,
    succeeded,
    failed,
    startTime: job.status?.startTime ?? stamp,
    ...(job.status?.completionTime ? { completionTime: job.status.completionTime } : {}),
    conditions: job.status?.conditions ?? [],
  };
  const done = finishedAs(job);
  if (done) return { create: 0, delete: active, status };
  const condition = (type: string, reason: string, message: string): Condition => ({ type, status: 'True', reason, message, lastTransitionTime: stamp });
  if (failed + restarts > backoffLimit) {
    status.conditions = [...status.conditions!, condition('FailureTarget', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'), condition('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit')];
    return { create: 0, delete: active, status: { ...status, active: 0, ready: 0 }, finished: 'Failed' };
  }
  const complete = completions !== undefined ? succeeded >= completions : succeeded > 0 && active.length === 0;
  if (complete) {
    status.conditions = [...status.conditions!, condition('SuccessCriteriaMet', 'CompletionsReached', 'Reached expected number of succeeded pods'), condition('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods')];
    return { create: 0, delete: active, status: { ...status, active: 0, ready: 0, completionTime: stamp }, finished: 'Complete' };
  }
  const want = completions !== undefined ? Math.min(parallelism, completions - succeeded) : succeeded > 0 ? 0 : parallelism;
  const create = Math.max(0, want - active.length);
  if (create && failed) {
    const until = Math.max(...owned.filter((p) => p.status?.phase === 'Failed').map(failedAt)) + Math.min(FAILURE_BACKOFF_MS * 2 ** (failed - 1), MAX_FAILURE_BACKOFF_MS);
    if (nowMs < until) return { create: 0, delete: [], status, retryInMs: until - nowMs };
  }
  return { create, delete: [], status };
}

/** One reconcile of the Job namespace/name; a number: again after that many ms (the failure back-off). */
export async function syncJob(ctx: ControllerContext, namespace: string, name: string, events?: EventRecorder): Promise<Requeue | number> {
  const job = lister<Job>(ctx, 'Job').get(namespace, name);
  if (!job || job.metadata.deletionTimestamp) return undefined;
  const owned = () => lister<Pod>(ctx, 'Pod').indexed('owner', job.metadata.uid!);
  const stamp = now();
  const plan = planJob(job, owned(), stamp);
  for (const p of plan.delete) {
    await ignoreNotFound(ctx.client.delete(rt('Pod'), namespace, p.metadata.name));
    events?.record(job, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`);
  }
  let failure: string | undefined;
  for (let i = 0; i < plan.create; i++) {
    try {
      const pod = await ctx.client.create(rt('Pod'), jobPod(job));
      events?.record(job, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
    } catch (e) {
      failure = `Error creating: ${e instanceof Error ? e.message : String(e)}`;
      events?.record(job, 'Warning', 'FailedCreate', failure);
      break;
    }
  }
  if (plan.finished === 'Complete') events?.record(job, 'Normal', 'Completed', 'Job completed');
  if (plan.finished === 'Failed') events?.record(job, 'Warning', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
  const status = plan.create && !plan.finished ? { ...plan.status, active: (plan.status.active ?? 0) + plan.create } : plan.status;
  if (JSON.stringify(status) !== JSON.stringify(job.status)) await ignoreNotFound(updateStatusWithRetry(ctx.client, rt('Job'), job, status)); // gone meanwhile: nothing to report
  return failure ? 'backoff' : plan.retryInMs;
}
