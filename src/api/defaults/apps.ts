// The API server's defaults for apps/v1 workloads (kubernetes/kubernetes
// pkg/apis/apps/v1/defaults.go): strategies, revision history, deadlines, and each pod
// template's spec (core.ts). Pure.

import { defaultTemplate } from './core.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- objects as clients send them

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function defaultDeployment<T extends Obj>(d: T): T {
  if (!isObj(d.spec)) return d;
  const s = d.spec;
  const type = s.strategy?.type || 'RollingUpdate';
  const strategy: Obj = { ...(s.strategy ?? {}), type };
  if (type === 'RollingUpdate') strategy.rollingUpdate = { maxUnavailable: '25%', maxSurge: '25%', ...(s.strategy?.rollingUpdate ?? {}) };
  return { ...d, spec: { ...s, replicas: s.replicas ?? 1, strategy, revisionHistoryLimit: s.revisionHistoryLimit ?? 10, progressDeadlineSeconds: s.progressDeadlineSeconds ?? 600, template: defaultTemplate(s.template) } };
}

export function defaultReplicaSet<T extends Obj>(r: T): T {
  if (!isObj(r.spec)) return r;
  return { ...r, spec: { ...r.spec, replicas: r.spec.replicas ?? 1, template: defaultTemplate(r.spec.template) } };
}

export function defaultStatefulSet<T extends Obj>(s: T): T {
  if (!isObj(s.spec)) return s;
  const spec = s.spec;
  const type = spec.updateStrategy?.type || 'RollingUpdate';
  const updateStrategy: Obj = { ...(spec.updateStrategy ?? {}), type };
  if (type === 'RollingUpdate') updateStrategy.rollingUpdate = { partition: 0, ...(spec.updateStrategy?.rollingUpdate ?? {}) };
  return {
    ...s,
    spec: {
      ...spec,
      replicas: spec.replicas ?? 1,
      podManagementPolicy: spec.podManagementPolicy || 'OrderedReady',
      updateStrategy,
      revisionHistoryLimit: spec.revisionHistoryLimit ?? 10,
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain', ...(spec.persistentVolumeClaimRetentionPolicy ?? {}) },
      template: defaultTemplate(spec.template),
    },
  };
}

export function defaultDaemonSet<T extends Obj>(d: T): T {
  if (!isObj(d.spec)) return d;
  const spec = d.spec;
  const type = spec.updateStrategy?.type || 'RollingUpdate';
  const updateStrategy: Obj = { ...(spec.updateStrategy ?? {}), type };
  if (type === 'RollingUpdate') updateStrategy.rollingUpdate = { maxUnavailable: 1, maxSurge: 0, ...(spec.updateStrategy?.rollingUpdate ?? {}) };
  return { ...d, spec: { ...spec, updateStrategy, revisionHistoryLimit: spec.revisionHistoryLimit ?? 10, template: defaultTemplate(spec.template) } };
}
