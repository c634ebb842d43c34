// Server-side Tables (meta.k8s.io/v1 Table), what `kubectl get` asks for with
// `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`: per kind, upstream's column
// definitions and cells (kubernetes/kubernetes pkg/printers/internalversion/printers.go, as the
// API server runs them: every column, `priority: 1` ones included, kubectl hides those unless
// -o wide). Pure: objects and a clock in, Table rows out.

import type { KubeObject, LabelSelector } from '../api/types.ts';
import { DOCS } from './table-docs.ts';
import { bindingColumns, type RoleBinding } from '../api/rbac.ts';

export interface ColumnDefinition {
  name: string;
  type: 'string' | 'integer' | 'boolean' | 'number' | 'date';
  format: string;
  description: string;
  priority: number;
}

export type Cell = string | number | boolean;

/** What a row carries besides its cells (TableRow.conditions: a finished pod is Completed). */
export interface Row {
  cells: Cell[];
  conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
}

interface Printer {
  columns: ColumnDefinition[];
  row: (obj: Obj, nowMs: number) => Row;
}

// ---- kubectl's formatting helpers (apimachinery duration.HumanDuration, labels, selectors) ----

/** apimachinery's duration.HumanDuration: 45s, 5m3s, 3h20m, 2d4h, 400d, 3y20d. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) return seconds % 60 ? `${minutes}m${seconds % 60}s` : `${minutes}m`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) return minutes % 60 ? `${hours}h${minutes % 60}m` : `${hours}h`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 ? `${Math.trunc(hours / 24)}d${hours % 24}h` : `${hours / 24}d`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  const days = Math.trunc(hours / 24);
  if (hours < 24 * 365 * 8) return days % 365 ? `${Math.trunc(days / 365)}y${days % 365}d` : `${days / 365}y`;
  return `${Math.trunc(days / 365)}y`;
}

/** translateTimestampSince: the age of a timestamp, `<unknown>` when there is none. */
export function since(timestamp: string | undefined, nowMs: number): string {
  if (!timestamp) return '<unknown>';
  const t = Date.parse(timestamp);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(nowMs - t);
}

/** labels.FormatLabels: sorted k=v pairs, `<none>` when empty. */
export function formatLabels(labels: Record<string, string> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort();
  return keys.length ? keys.map((k) => `${k}=${labels![k]}`).join(',') : '<none>';
}

/** labels.Selector.String() of a LabelSelector: requirements sorted by key, values sorted. */
export function selectorString(sel: LabelSelector | undefined): string {
  if (!sel) return '';
  const reqs: Array<[string, string]> = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => [k, `${k}=${v}`]);
  for (const e of sel.matchExpressions ?? []) {
    const values = [...(e.values ?? [])].sort().join(',');
    if (e.operator === 'In') reqs.push([e.key, `${e.key} in (${values})`]);
    else if (e.operator === 'NotIn') reqs.push([e.key, `${e.key} notin (${values})`]);
    else if (e.operator === 'Exists') reqs.push([e.key, e.key]);
    else if (e.operator === 'DoesNotExist') reqs.push([e.key, `!${e.key}`]);
  }
  return reqs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((r) => r[1]).join(',');
}

/** metav1.FormatLabelSelector: the selector string, `<none>` when it selects by nothing. */
export function formatLabelSelector(sel: LabelSelector | undefined): string {
  return selectorString(sel) || '<none>';
}

function containerCells(template: { spec?: { containers?: Array<{ name?: string; image?: string }> } } | undefined): [string, string] {
  const cs = template?.spec?.containers ?? [];
  return [cs.map((c) => c.name ?? '').join(','), cs.map((c) => c.image ?? '').join(',')];
}

/** listWithMoreString: the first three, then `+ N more...`; `<unset>` when empty. */
function listWithMore(all: string[], max = 3): string {
  if (all.length > max) return `${all.slice(0, max).join(',')} + ${all.length - max} more...`;
  return all.join(',') || '<unset>';
}

/** loadBalancerStatusStringer: unique IPs/hostnames sorted, clipped to 16 characters unless wide (the server prints wide). */
function loadBalancerStatus(ingress: Array<{ ip?: string; hostname?: string }> | undefined): string {
  return [...new Set((ingress ?? []).map((i) => i.ip || i.hostname || '').filter(Boolean))].sort().join(',');
}

// ---- column definitions ----

const col = (name: string, type: ColumnDefinition['type'], description: string, priority = 0, format = ''): ColumnDefinition => ({ name, type, format, description, priority });
const doc = (key: string): string => DOCS[key] ?? '';
const NAME = col('Name', 'string', doc('ObjectMeta.name'), 0, 'name');
const AGE = col('Age', 'string', doc('ObjectMeta.creationTimestamp'));
const CONTAINERS = col('Containers', 'string', 'Names of each container in the template.', 1);
const IMAGES = col('Images', 'string', 'Images referenced by each container in the template.', 1);

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- objects as stored: any field may be missing

// ---- Pod ----

const podSucceeded = [{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }];
const podFailed = [{ type: 'Completed', status: 'True', reason: 'Failed', message: 'The pod failed.' }];

function isRestartableInit(c: Obj | undefined): boolean {
  return c?.restartPolicy === 'Always';
}

function later(a: string | undefined, b: string | undefined): string | undefined {
  if (!b) return a;
  if (!a) return b;
  return Date.parse(b) > Date.parse(a) ? b : a;
}

/** printPod: READY, STATUS (the reason logic of kubectl), RESTARTS with "(Xs ago)", and the wide columns. */
export function podRow(pod: Obj, nowMs: number): Row {
  const spec: Obj = pod.spec ?? {};
  const status: Obj = pod.status ?? {};
  let restarts = 0;
  let sidecarRestarts = 0;
  let totalContainers = (spec.containers ?? []).length;
  let readyContainers = 0;
  let lastRestart: string | undefined;
  let lastSidecarRestart: string | undefined;
  const phase: string = status.phase ?? '';
  let reason: string = status.reason || phase;
  for (const c of status.conditions ?? []) if (c.type === 'PodScheduled' && c.reason === 'SchedulingGated') reason = 'SchedulingGated';
  const row: Row = { cells: [] };
  if (phase === 'Succeeded') row.conditions = podSucceeded;
  else if (phase === 'Failed') row.conditions = podFailed;

  const inits = new Map<string, Obj>((spec.initContainers ?? []).map((c: Obj) => [c.name, c]));
  for (const c of inits.values()) if (isRestartableInit(c)) totalContainers++;
  let initializing = false;
  const initStatuses: Obj[] = status.initContainerStatuses ?? [];
  for (let i = 0; i < initStatuses.length; i++) {
    const c = initStatuses[i]!;
    restarts += c.restartCount ?? 0;
    const finished = c.lastState?.terminated?.finishedAt;
    lastRestart = later(lastRestart, finished);
    const sidecar = isRestartableInit(inits.get(c.name));
    if (sidecar) {
      sidecarRestarts += c.restartCount ?? 0;
      lastSidecarRestart = later(lastSidecarRestart, finished);
    }
    const term = c.state?.terminated;
    const wait = c.state?.waiting;
    if (term && term.exitCode === 0) continue;
    if (sidecar && c.started) {
      if (c.ready) readyContainers++;
      continue;
    }
    if (term) reason = term.reason ? `Init:${term.reason}` : term.signal ? `Init:Signal:${term.signal}` : `Init:ExitCode:${term.exitCode}`;
    else if (wait?.reason && wait.reason !== 'PodInitializing') reason = `Init:${wait.reason}`;
    else reason = `Init:${i}/${(spec.initContainers ?? []).length}`;
    initializing = true;
    break;
  }

  const initialized = (status.conditions ?? []).find((c: Obj) => c.type === 'Initialized')?.status === 'True';
  if (!initializing || initialized) {
    restarts = sidecarRestarts;
    lastRestart = lastSidecarRestart;
    let hasRunning = false;
    const statuses: Obj[] = status.containerStatuses ?? [];
    for (let i = statuses.length - 1; i >= 0; i--) {
      const c = statuses[i]!;
      restarts += c.restartCount ?? 0;
      lastRestart = later(lastRestart, c.lastState?.terminated?.finishedAt);
      const term = c.state?.terminated;
      if (c.state?.waiting?.reason) reason = c.state.waiting.reason;
      else if (term?.reason) reason = term.reason;
      else if (term) reason = term.signal ? `Signal:${term.signal}` : `ExitCode:${term.exitCode}`;
      else if (c.ready && c.state?.running) {
        hasRunning = true;
        readyContainers++;
      }
    }
    if (reason === 'Completed' && hasRunning) reason = (status.conditions ?? []).some((c: Obj) => c.type === 'Ready' && c.status === 'True') ? 'Running' : 'NotReady';
  }

  if (pod.metadata?.deletionTimestamp && status.reason === 'NodeLost') reason = 'Unknown';
  else if (pod.metadata?.deletionTimestamp && phase !== 'Succeeded' && phase !== 'Failed') reason = 'Terminating';

  const restartsCell = restarts !== 0 && lastRestart ? `${restarts} (${since(lastRestart, nowMs)} ago)` : String(restarts);
  const gates: Obj[] = spec.readinessGates ?? [];
  const readiness = gates.length
    ? `${gates.filter((g) => (status.conditions ?? []).find((c: Obj) => c.type === g.conditionType)?.status === 'True').length}/${gates.length}`
    : '<none>';
  row.cells = [
    pod.metadata?.name ?? '',
    `${readyContainers}/${totalContainers}`,
    reason,
    restartsCell,
    since(pod.metadata?.creationTimestamp, nowMs),
    status.podIPs?.[0]?.ip || '<none>',
    spec.nodeName || '<none>',
    status.nominatedNodeName || '<none>',
    readiness,
  ];
  return row;
}

// ---- Service ----

function serviceExternalIP(svc: Obj): string {
  const spec: Obj = svc.spec ?? {};
  const external: string[] = spec.externalIPs ?? [];
  switch (spec.type ?? 'ClusterIP') {
    case 'ClusterIP':
    case 'NodePort':
      return external.length ? external.join(',') : '<none>';
    case 'LoadBalancer': {
      const lb = loadBalancerStatus(svc.status?.loadBalancer?.ingress);
      if (external.length) return [...(lb ? lb.split(',') : []), ...external].join(',');
      return lb || '<pending>';
    }
    case 'ExternalName':
      return spec.externalName ?? '';
  }
  return '<unknown>';
}

/** makePortString: 80/TCP, 80:30080/TCP. */
export function servicePorts(ports: Obj[] | undefined): string {
  return (ports ?? []).map((p) => (p.nodePort > 0 ? `${p.port}:${p.nodePort}/${p.protocol ?? ''}` : `${p.port}/${p.protocol ?? ''}`)).join(',');
}

// ---- Node ----

/** findNodeRoles: node-role.kubernetes.io/<role> labels and kubernetes.io/role=<role>, sorted. */
export function nodeRoles(labels: Record<string, string> | undefined): string[] {
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/')) {
      const role = k.slice('node-role.kubernetes.io/'.length);
      if (role) roles.add(role);
    } else if (k === 'kubernetes.io/role' && v) roles.add(v);
  }
  return [...roles].sort();
}

function nodeRow(n: Obj, nowMs: number): Row {
  const ready = (n.status?.conditions ?? []).find((c: Obj) => c.type === 'Ready');
  const status = [ready ? (ready.status === 'True' ? 'Ready' : 'NotReady') : 'Unknown'];
  if (n.spec?.unschedulable) status.push('SchedulingDisabled');
  const info: Obj = n.status?.nodeInfo ?? {};
  const address = (type: string) => (n.status?.addresses ?? []).find((a: Obj) => a.type === type)?.address ?? '<none>';
  return {
    cells: [
      n.metadata?.name ?? '',
      status.join(','),
      nodeRoles(n.metadata?.labels).join(',') || '<none>',
      since(n.metadata?.creationTimestamp, nowMs),
      info.kubeletVersion ?? '',
      address('InternalIP'),
      address('ExternalIP'),
      info.osImage || '<unknown>',
      info.kernelVersion || '<unknown>',
      info.containerRuntimeVersion || '<unknown>',
    ],
  };
}

// ---- Job ----

function jobCondition(j: Obj, type: string): boolean {
  const c = (j.status?.conditions ?? []).find((x: Obj) => x.type === type);
  return c?.status === 'True';
}

function jobRow(j: Obj, nowMs: number): Row {
  const spec: Obj = j.spec ?? {};
  const succeeded = j.status?.succeeded ?? 0;
  const completions = spec.completions != null ? `${succeeded}/${spec.completions}` : (spec.parallelism ?? 0) > 1 ? `${succeeded}/1 of ${spec.parallelism}` : `${succeeded}/1`;
  const start = j.status?.startTime;
  const end = j.status?.completionTime;
  const duration = !start ? '' : !end ? humanDuration(nowMs - Date.parse(start)) : humanDuration(Date.parse(end) - Date.parse(start));
  const status = jobCondition(j, 'Complete')
    ? 'Complete'
    : jobCondition(j, 'Failed')
      ? 'Failed'
      : j.metadata?.deletionTimestamp
        ? 'Terminating'
        : jobCondition(j, 'Suspended')
          ? 'Suspended'
          : jobCondition(j, 'FailureTarget')
            ? 'FailureTarget'
            : 'Running';
  return { cells: [j.metadata?.name ?? '', status, completions, duration, since(j.metadata?.creationTimestamp, nowMs), ...containerCells(spec.template), formatLabelSelector(spec.selector)] };
}

// ---- Event ----

function eventRow(e: Obj, nowMs: number): Row {
  const first = e.firstTimestamp ? since(e.firstTimestamp, nowMs) : since(e.eventTime, nowMs);
  let last = e.lastTimestamp ? since(e.lastTimestamp, nowMs) : first;
  let count = e.count ?? 0;
  if (e.series) {
    last = since(e.series.lastObservedTime, nowMs);
    count = e.series.count ?? 0;
  } else if (count === 0) count = 1;
  const io: Obj = e.involvedObject ?? {};
  const target = io.name ? `${String(io.kind ?? '').toLowerCase()}/${io.name}` : String(io.kind ?? '').toLowerCase();
  const component = e.source?.component || e.reportingComponent || '';
  const instance = e.source?.host || e.reportingInstance || '';
  const source = instance ? `${component}, ${instance}` : component;
  return { cells: [last, e.type ?? '', e.reason ?? '', target, io.fieldPath ?? '', source, String(e.message ?? '').trim(), first, count, e.metadata?.name ?? ''] };
}

// ---- the printers of every kind kubewire serves (and those it may come to serve) ----

const age = (o: Obj, nowMs: number) => since(o.metadata?.creationTimestamp, nowMs);
const name = (o: Obj) => o.metadata?.name ?? '';

export const PRINTERS: Readonly<Record<string, Printer>> = {
  Pod: {
    columns: [
      NAME,
      col('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
      col('Status', 'string', 'The aggregate status of the containers in this pod.'),
      col('Restarts', 'string', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
      AGE,
      col('IP', 'string', doc('PodStatus.podIP'), 1),
      col('Node', 'string', doc('PodSpec.nodeName'), 1),
      col('Nominated Node', 'string', doc('PodStatus.nominatedNodeName'), 1),
      col('Readiness Gates', 'string', doc('PodSpec.readinessGates'), 1),
    ],
    row: podRow,
  },
  Deployment: {
    columns: [
      NAME,
      col('Ready', 'string', 'Number of the pod with ready state'),
      col('Up-to-date', 'string', doc('DeploymentStatus.updatedReplicas')),
      col('Available', 'string', doc('DeploymentStatus.availableReplicas')),
      AGE,
      CONTAINERS,
      IMAGES,
      col('Selector', 'string', doc('DeploymentSpec.selector'), 1),
    ],
    row: (d, now) => ({
      cells: [name(d), `${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 0}`, d.status?.updatedReplicas ?? 0, d.status?.availableReplicas ?? 0, age(d, now), ...containerCells(d.spec?.template), selectorString(d.spec?.selector)],
    }),
  },
  ReplicaSet: {
    columns: [
      NAME,
      col('Desired', 'integer', doc('ReplicaSetSpec.replicas')),
      col('Current', 'integer', doc('ReplicaSetStatus.replicas')),
      col('Ready', 'integer', doc('ReplicaSetStatus.readyReplicas')),
      AGE,
      CONTAINERS,
      IMAGES,
      col('Selector', 'string', doc('ReplicaSetSpec.selector'), 1),
    ],
    row: (r, now) => ({ cells: [name(r), r.spec?.replicas ?? 0, r.status?.replicas ?? 0, r.status?.readyReplicas ?? 0, age(r, now), ...containerCells(r.spec?.template), formatLabelSelector(r.spec?.selector)] }),
  },
  StatefulSet: {
    columns: [NAME, col('Ready', 'string', 'Number of the pod with ready state'), AGE, CONTAINERS, IMAGES],
    row: (s, now) => ({ cells: [name(s), `${s.status?.readyReplicas ?? 0}/${s.spec?.replicas ?? 0}`, age(s, now), ...containerCells(s.spec?.template)] }),
  },
  DaemonSet: {
    columns: [
      NAME,
      col('Desired', 'integer', doc('DaemonSetStatus.desiredNumberScheduled')),
      col('Current', 'integer', doc('DaemonSetStatus.currentNumberScheduled')),
      col('Ready', 'integer', doc('DaemonSetStatus.numberReady')),
      col('Up-to-date', 'integer', doc('DaemonSetStatus.updatedNumberScheduled')),
      col('Available', 'integer', doc('DaemonSetStatus.numberAvailable')),
      col('Node Selector', 'string', doc('PodSpec.nodeSelector')),
      AGE,
      CONTAINERS,
      IMAGES,
      col('Selector', 'string', doc('DaemonSetSpec.selector'), 1),
    ],
    row: (d, now) => {
      const s: Obj = d.status ?? {};
      return {
        cells: [name(d), s.desiredNumberScheduled ?? 0, s.currentNumberScheduled ?? 0, s.numberReady ?? 0, s.updatedNumberScheduled ?? 0, s.numberAvailable ?? 0, formatLabels(d.spec?.template?.spec?.nodeSelector), age(d, now), ...containerCells(d.spec?.template), formatLabelSelector(d.spec?.selector)],
      };
    },
  },
  Job: {
    columns: [
      NAME,
      col('Status', 'string', 'Status of the job.'),
      col('Completions', 'string', doc('JobStatus.succeeded')),
      col('Duration', 'string', 'Time required to complete the job.'),
      AGE,
      CONTAINERS,
      IMAGES,
      col('Selector', 'string', doc('JobSpec.selector'), 1),
    ],
    row: jobRow,
  },
  Service: {
    columns: [
      NAME,
      col('Type', 'string', doc('ServiceSpec.type')),
      col('Cluster-IP', 'string', doc('ServiceSpec.clusterIP')),
      col('External-IP', 'string', doc('ServiceSpec.externalIPs')),
      col('Port(s)', 'string', doc('ServiceSpec.ports')),
      AGE,
      col('Selector', 'string', doc('ServiceSpec.selector'), 1),
    ],
    row: (s, now) => ({ cells: [name(s), s.spec?.type ?? '', s.spec?.clusterIPs?.[0] ?? '<none>', serviceExternalIP(s), servicePorts(s.spec?.ports) || '<none>', age(s, now), formatLabels(s.spec?.selector)] }),
  },
  Endpoints: {
    columns: [NAME, col('Endpoints', 'string', doc('Endpoints.subsets')), AGE],
    row: (e, now) => {
      const subsets: Obj[] = e.subsets ?? [];
      if (!subsets.length) return { cells: [name(e), '<none>', age(e, now)] };
      const all: string[] = [];
      for (const ss of subsets) {
        const addrs: Obj[] = ss.addresses ?? [];
        if (!(ss.ports ?? []).length) all.push(...addrs.map((a) => a.ip));
        else for (const p of ss.ports) all.push(...addrs.map((a) => (a.ip.includes(':') ? `[${a.ip}]:${p.port}` : `${a.ip}:${p.port}`)));
      }
      return { cells: [name(e), all.length > 3 ? `${all.slice(0, 3).join(',')} + ${all.length - 3} more...` : all.join(','), age(e, now)] };
    },
  },
  EndpointSlice: {
    columns: [NAME, col('AddressType', 'string', doc('EndpointSlice.addressType')), col('Ports', 'string', doc('EndpointSlice.ports')), col('Endpoints', 'string', doc('EndpointSlice.endpoints')), AGE],
    row: (s, now) => ({
      cells: [
        name(s),
        s.addressType ?? '',
        listWithMore((s.ports ?? []).map((p: Obj) => (p.port != null ? String(p.port) : p.name != null ? p.name : '*'))),
        listWithMore((s.endpoints ?? []).flatMap((e: Obj) => e.addresses ?? [])),
        age(s, now),
      ],
    }),
  },
  Ingress: {
    columns: [
      NAME,
      col('Class', 'string', 'The name of the IngressClass resource that should be used for additional configuration'),
      col('Hosts', 'string', 'Hosts that incoming requests are matched against before the ingress rule'),
      col('Address', 'string', 'Address is a list containing ingress points for the load-balancer'),
      col('Ports', 'string', 'Ports of TLS configurations that open'),
      AGE,
    ],
    row: (i, now) => {
      const rules: Obj[] = i.spec?.rules ?? [];
      const hosts = rules.filter((r) => r.host).map((r) => r.host as string);
      const hostCell = !hosts.length ? '*' : rules.length > 3 ? `${hosts.slice(0, 3).join(',')} + ${rules.length - 3} more...` : hosts.join(',');
      return { cells: [name(i), i.spec?.ingressClassName ?? '<none>', hostCell, loadBalancerStatus(i.status?.loadBalancer?.ingress), (i.spec?.tls ?? []).length ? '80, 443' : '80', age(i, now)] };
    },
  },
  IngressClass: {
    columns: [NAME, col('Controller', 'string', 'Controller that is responsible for handling this class'), col('Parameters', 'string', 'A reference to a resource with additional parameters'), AGE],
    row: (c, now) => {
      const p: Obj | undefined = c.spec?.parameters;
      const params = p ? `${p.kind}${p.apiGroup != null ? `.${p.apiGroup}` : ''}/${p.name}` : '<none>';
      return { cells: [name(c), c.spec?.controller ?? '', params, age(c, now)] };
    },
  },
  NetworkPolicy: {
    columns: [NAME, col('Pod-Selector', 'string', doc('NetworkPolicySpec.podSelector')), AGE],
    row: (p, now) => ({ cells: [name(p), formatLabelSelector(p.spec?.podSelector), age(p, now)] }),
  },
  Node: {
    columns: [
      NAME,
      col('Status', 'string', 'The status of the node'),
      col('Roles', 'string', 'The roles of the node'),
      AGE,
      col('Version', 'string', doc('NodeSystemInfo.kubeletVersion')),
      col('Internal-IP', 'string', doc('NodeStatus.addresses'), 1),
      col('External-IP', 'string', doc('NodeStatus.addresses'), 1),
      col('OS-Image', 'string', doc('NodeSystemInfo.osImage'), 1),
      col('Kernel-Version', 'string', doc('NodeSystemInfo.kernelVersion'), 1),
      col('Container-Runtime', 'string', doc('NodeSystemInfo.containerRuntimeVersion'), 1),
    ],
    row: nodeRow,
  },
  Namespace: {
    columns: [NAME, col('Status', 'string', 'The status of the namespace'), AGE],
    row: (n, now) => ({ cells: [name(n), n.status?.phase ?? '', age(n, now)] }),
  },
  Event: {
    columns: [
      col('Last Seen', 'string', doc('Event.lastTimestamp')),
      col('Type', 'string', doc('Event.type')),
      col('Reason', 'string', doc('Event.reason')),
      col('Object', 'string', doc('Event.involvedObject')),
      col('Subobject', 'string', doc('ObjectReference.fieldPath'), 1),
      col('Source', 'string', doc('Event.source'), 1),
      col('Message', 'string', doc('Event.message')),
      col('First Seen', 'string', doc('Event.firstTimestamp'), 1),
      col('Count', 'string', doc('Event.count'), 1),
      col('Name', 'string', doc('ObjectMeta.name'), 1, 'name'),
    ],
    row: eventRow,
  },
  Secret: {
    columns: [NAME, col('Type', 'string', doc('Secret.type')), col('Data', 'string', doc('Secret.data')), AGE],
    row: (s, now) => ({ cells: [name(s), s.type ?? '', Object.keys(s.data ?? {}).length, age(s, now)] }),
  },
  ConfigMap: {
    columns: [NAME, col('Data', 'string', doc('ConfigMap.data')), AGE],
    row: (c, now) => ({ cells: [name(c), Object.keys(c.data ?? {}).length + Object.keys(c.binaryData ?? {}).length, age(c, now)] }),
  },
  ServiceAccount: {
    columns: [NAME, col('Secrets', 'string', doc('ServiceAccount.secrets')), AGE],
    row: (s, now) => ({ cells: [name(s), (s.secrets ?? []).length, age(s, now)] }),
  },
  // Upstream's Role and ClusterRole columns are the default ones.
  Role: { columns: [NAME, col('Created At', 'date', doc('ObjectMeta.creationTimestamp'))], row: (o) => ({ cells: [name(o), o.metadata?.creationTimestamp ?? ''] }) },
  ClusterRole: { columns: [NAME, col('Created At', 'date', doc('ObjectMeta.creationTimestamp'))], row: (o) => ({ cells: [name(o), o.metadata?.creationTimestamp ?? ''] }) },
  RoleBinding: bindingPrinter('RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.'),
  ClusterRoleBinding: bindingPrinter('RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.'),
  Lease: {
    columns: [NAME, col('Holder', 'string', doc('LeaseSpec.holderIdentity')), AGE],
    row: (l, now) => ({ cells: [name(l), l.spec?.holderIdentity ?? '', age(l, now)] }),
  },
};

/** Upstream's roleBinding columns (Roles and ClusterRoles print the default Name and Created At). */
function bindingPrinter(roleDoc: string): Printer {
  return {
    columns: [NAME, col('Role', 'string', roleDoc), AGE, col('Users', 'string', 'Users in the roleBinding', 1), col('Groups', 'string', 'Groups in the roleBinding', 1), col('ServiceAccounts', 'string', 'ServiceAccounts in the roleBinding', 1)],
    row: (b, now) => {
      const c = bindingColumns(b as unknown as RoleBinding);
      return { cells: [name(b), c.role, age(b, now), c.users, c.groups, c.serviceAccounts] };
    },
  };
}

/** The default Table of a kind upstream has no printer for: Name and Created At (the API server's DefaultTableConvertor). */
const DEFAULT_PRINTER: Printer = {
  columns: [NAME, col('Created At', 'date', doc('ObjectMeta.creationTimestamp'))],
  row: (o) => ({ cells: [name(o), o.metadata?.creationTimestamp ?? ''] }),
};

export function printerOf(kind: string): Printer {
  return PRINTERS[kind] ?? DEFAULT_PRINTER;
}

// ---- the Table answer ----

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface TableOptions {
  /** meta.k8s.io/v1 or meta.k8s.io/v1beta1, as the client asked. */
  version: 'v1' | 'v1beta1';
  includeObject: IncludeObject;
  /** Leave out columnDefinitions (every watch event after the first). */
  noHeaders?: boolean;
}

/** The metadata of an object as meta.k8s.io's PartialObjectMetadata (what --show-labels and sorting read). */
export function partialObjectMetadata(obj: KubeObject, version: 'v1' | 'v1beta1' = 'v1'): object {
  return { kind: 'PartialObjectMetadata', apiVersion: `meta.k8s.io/${version}`, metadata: obj.metadata };
}

function rowOf(obj: KubeObject, printer: Printer, opts: TableOptions, nowMs: number): object {
  const r = printer.row(obj, nowMs);
  const object = opts.includeObject === 'None' ? null : opts.includeObject === 'Object' ? obj : partialObjectMetadata(obj, opts.version);
  return { cells: r.cells, ...(r.conditions ? { conditions: r.conditions } : {}), object };
}

/** A Table of objects of one kind (a list, a get, or one watch event's object). */
export function toTable(kind: string, items: KubeObject[], meta: { resourceVersion?: string; continue?: string; remainingItemCount?: number }, opts: TableOptions, nowMs = Date.now()): object {
  const printer = printerOf(kind);
  return {
    kind: 'Table',
    apiVersion: `meta.k8s.io/${opts.version}`,
    metadata: { ...(meta.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}), ...(meta.continue ? { continue: meta.continue } : {}), ...(meta.remainingItemCount !== undefined ? { remainingItemCount: meta.remainingItemCount } : {}) },
    ...(opts.noHeaders ? {} : { columnDefinitions: printer.columns }),
    rows: items.map((o) => rowOf(o, printer, opts, nowMs)),
  };
}
