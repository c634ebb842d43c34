// Output as kubectl prints it: tables with its columns and wording, ages like "5m3s",
// -o json (the object, or a v1 List), -o yaml, -o name.

import { stringify } from 'yaml';
import type { ResourceType } from '../api/resources.ts';
import { bindingColumns, type RoleBinding } from '../api/rbac.ts';
import type { ConfigMap, DaemonSet, Deployment, ReplicaSet, EndpointSlice, Event, Ingress, IngressClass, Job, KubeObject, Namespace, NetworkPolicy, Node, Pod, Secret, Service, StatefulSet } from '../api/types.ts';
import { formatSelector } from '../api/labels.ts';
import { formatLabelSelector, since } from '../apiserver/tables.ts';

export function table(rows: string[][]): string {
  if (!rows.length) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd()).join('\n');
}

/** An object's age as kubectl prints it (apimachinery's HumanDuration: 45s, 5m3s, 3h20m, 2d4h, 400d, 2y10d), the API server's Tables' own. */
export function age(timestamp: string | undefined, nowMs = Date.now()): string {
  return since(timestamp, nowMs);
}

/** The STATUS column of `kubectl get pods`. */
export function podStatus(pod: Pod): string {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  const st = pod.status;
  if (st?.phase === 'Succeeded') return 'Completed';
  if (st?.phase === 'Failed') return st.reason ?? 'Error';
  for (const c of st?.containerStatuses ?? []) {
    if (c.state.waiting) return c.state.waiting.reason;
    if (c.state.terminated && st?.phase !== 'Running') return c.state.terminated.reason;
  }
  return st?.phase ?? 'Pending';
}

function podRow(pod: Pod, wide: boolean): string[] {
  const cs = pod.status?.containerStatuses ?? [];
  const ready = `${cs.filter((c) => c.ready).length}/${pod.spec.containers.length}`;
  const restarts = cs.reduce((n, c) => n + c.restartCount, 0);
  const row = [pod.metadata.name, ready, podStatus(pod), String(restarts), age(pod.metadata.creationTimestamp)];
  if (wide) row.push(pod.status?.podIP ?? '<none>', pod.spec.nodeName ?? '<none>');
  return row;
}

function deploymentRow(d: Deployment, wide: boolean): string[] {
  const s = d.status ?? {};
  const row = [d.metadata.name, `${s.readyReplicas ?? 0}/${d.spec.replicas ?? 1}`, String(s.updatedReplicas ?? 0), String(s.availableReplicas ?? 0), age(d.metadata.creationTimestamp)];
  if (wide) row.push(d.spec.template.spec.containers.map((c) => c.name).join(','), d.spec.template.spec.containers.map((c) => c.image).join(','), formatSelector(d.spec.selector));
  return row;
}

function replicaSetRow(rs: ReplicaSet, wide: boolean): string[] {
  const row = [rs.metadata.name, String(rs.spec.replicas ?? 1), String(rs.status?.replicas ?? 0), String(rs.status?.readyReplicas ?? 0), age(rs.metadata.creationTimestamp)];
  if (wide) row.push(...templateColumns(rs.spec.template), formatSelector(rs.spec.selector));
  return row;
}

/** kubectl's ENDPOINTS column: ip:port pairs, three at most, then "+ N more...". */
export function endpointsColumn(subsets: Array<{ addresses?: Array<{ ip: string }>; ports?: Array<{ port: number }> }> | undefined): string {
  const pairs = (subsets ?? []).flatMap((s) => (s.addresses ?? []).flatMap((a) => (s.ports?.length ? s.ports.map((p) => `${a.ip}:${p.port}`) : [a.ip])));
  if (!pairs.length) return '<none>';
  return pairs.length > 3 ? `${pairs.slice(0, 3).join(',')} + ${pairs.length - 3} more...` : pairs.join(',');
}

function templateColumns(t: { spec: { containers: Array<{ name: string; image: string }> } }): string[] {
  return [t.spec.containers.map((c) => c.name).join(','), t.spec.containers.map((c) => c.image).join(',')];
}

function statefulSetRow(s: StatefulSet, wide: boolean): string[] {
  const row = [s.metadata.name, `${s.status?.readyReplicas ?? 0}/${s.spec.replicas ?? 1}`, age(s.metadata.creationTimestamp)];
  if (wide) row.push(...templateColumns(s.spec.template));
  return row;
}

function daemonSetRow(d: DaemonSet, wide: boolean): string[] {
  const s = d.status;
  const selector = d.spec.template.spec.nodeSelector;
  const row = [d.metadata.name, String(s?.desiredNumberScheduled ?? 0), String(s?.currentNumberScheduled ?? 0), String(s?.numberReady ?? 0), String(s?.updatedNumberScheduled ?? 0), String(s?.numberAvailable ?? 0), selector && Object.keys(selector).length ? Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',') : '<none>', age(d.metadata.creationTimestamp)];
  if (wide) row.push(...templateColumns(d.spec.template), formatSelector(d.spec.selector));
  return row;
}

/** kubectl's Job STATUS column (1.31): Complete, Failed, Running. */
function jobStatus(j: Job): string {
  const c = j.status?.conditions ?? [];
  if (c.some((x) => x.type === 'Complete' && x.status === 'True')) return 'Complete';
  if (c.some((x) => x.type === 'Failed' && x.status === 'True')) return 'Failed';
  return 'Running';
}

function jobRow(j: Job, wide: boolean): string[] {
  const completions = j.spec.completions ?? (j.spec.parallelism === undefined ? 1 : undefined);
  const start = j.status?.startTime;
  const end = j.status?.completionTime;
  const duration = start ? age(start, end ? Date.parse(end) : Date.now()) : '';
  const row = [j.metadata.name, jobStatus(j), `${j.status?.succeeded ?? 0}/${completions ?? 1}`, duration, age(j.metadata.creationTimestamp)];
  if (wide) row.push(...templateColumns(j.spec.template));
  return row;
}

function nodeRow(n: Node, wide: boolean): string[] {
  const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const row = [n.metadata.name, `${ready ? 'Ready' : 'NotReady'}${n.spec?.unschedulable ? ',SchedulingDisabled' : ''}`, '<none>', age(n.metadata.creationTimestamp), n.status?.nodeInfo?.kubeletVersion ?? ''];
  if (wide) row.push(n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address ?? '<none>', n.spec?.podCIDR ?? '<none>', n.status?.nodeInfo?.containerRuntimeVersion ?? '');
  return row;
}

function servicePorts(svc: Service): string {
  return (svc.spec.ports ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',') || '<none>';
}

function serviceRow(svc: Service, wide: boolean): string[] {
  const external = svc.spec.externalIPs?.length ? svc.spec.externalIPs.join(',') : svc.spec.type === 'LoadBalancer' ? '<pending>' : '<none>';
  const row = [svc.metadata.name, svc.spec.type ?? 'ClusterIP', svc.spec.clusterIP ?? '<none>', external, servicePorts(svc), age(svc.metadata.creationTimestamp)];
  if (wide) row.push(svc.spec.selector ? Object.entries(svc.spec.selector).map(([k, v]) => `${k}=${v}`).join(',') : '<none>');
  return row;
}

function bindingRow(o: KubeObject, wide: boolean): string[] {
  const c = bindingColumns(o as RoleBinding);
  const row = [o.metadata.name, c.role, age(o.metadata.creationTimestamp)];
  if (wide) row.push(c.users, c.groups, c.serviceAccounts);
  return row;
}

function sliceRow(es: EndpointSlice): string[] {
  const ports = (es.ports ?? []).map((p) => String(p.port ?? '<unset>')).join(',') || '<unset>';
  const addrs = es.endpoints.map((e) => e.addresses[0]!);
  const shown = addrs.length > 3 ? `${addrs.slice(0, 3).join(',')} + ${addrs.length - 3} more...` : addrs.join(',') || '<unset>';
  return [es.metadata.name, es.addressType, ports, shown, age(es.metadata.creationTimestamp)];
}

function ingressRow(ing: Ingress): string[] {
  const hosts = [...new Set((ing.spec.rules ?? []).map((r) => r.host || '*'))].join(',') || '*';
  const address = (ing.status?.loadBalancer?.ingress ?? []).map((a) => a.ip ?? a.hostname).join(',');
  const cls = ing.spec.ingressClassName ?? ing.metadata.annotations?.['kubernetes.io/ingress.class'] ?? '<none>';
  return [ing.metadata.name, cls, hosts, address, ing.spec.tls?.length ? '80, 443' : '80', age(ing.metadata.creationTimestamp)];
}

function eventRow(e: Event): string[] {
  const obj = `${e.involvedObject.kind.toLowerCase()}/${e.involvedObject.name}`;
  return [age(e.lastTimestamp), e.type, e.reason, obj, e.message];
}

const HEADERS: Record<string, { base: string[]; wide: string[]; row: (o: KubeObject, wide: boolean) => string[] }> = {
  Pod: { base: ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'], wide: ['IP', 'NODE'], row: (o, w) => podRow(o as Pod, w) },
  Deployment: { base: ['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE'], wide: ['CONTAINERS', 'IMAGES', 'SELECTOR'], row: (o, w) => deploymentRow(o as Deployment, w) },
  ReplicaSet: { base: ['NAME', 'DESIRED', 'CURRENT', 'READY', 'AGE'], wide: ['CONTAINERS', 'IMAGES', 'SELECTOR'], row: (o, w) => replicaSetRow(o as ReplicaSet, w) },
  Endpoints: { base: ['NAME', 'ENDPOINTS', 'AGE'], wide: [], row: (o) => [o.metadata.name, endpointsColumn((o as { subsets?: [] }).subsets), age(o.metadata.creationTimestamp)] },
  Lease: { base: ['NAME', 'HOLDER', 'AGE'], wide: [], row: (o) => [o.metadata.name, String((o.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? ''), age(o.metadata.creationTimestamp)] },
  Node: { base: ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION'], wide: ['INTERNAL-IP', 'POD-CIDR', 'CONTAINER-RUNTIME'], row: (o, w) => nodeRow(o as Node, w) },
  Service: { base: ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE'], wide: ['SELECTOR'], row: (o, w) => serviceRow(o as Service, w) },
  EndpointSlice: { base: ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE'], wide: [], row: (o) => sliceRow(o as EndpointSlice) },
  Ingress: { base: ['NAME', 'CLASS', 'HOSTS', 'ADDRESS', 'PORTS', 'AGE'], wide: [], row: (o) => ingressRow(o as Ingress) },
  NetworkPolicy: { base: ['NAME', 'POD-SELECTOR', 'AGE'], wide: [], row: (o) => [o.metadata.name, formatLabelSelector((o as NetworkPolicy).spec?.podSelector), age(o.metadata.creationTimestamp)] },
  IngressClass: { base: ['NAME', 'CONTROLLER', 'PARAMETERS', 'AGE'], wide: [], row: (o) => [o.metadata.name, (o as IngressClass).spec.controller ?? '', (o as IngressClass).spec.parameters ? JSON.stringify((o as IngressClass).spec.parameters) : '<none>', age(o.metadata.creationTimestamp)] },
  StatefulSet: { base: ['NAME', 'READY', 'AGE'], wide: ['CONTAINERS', 'IMAGES'], row: (o, w) => statefulSetRow(o as StatefulSet, w) },
  DaemonSet: { base: ['NAME', 'DESIRED', 'CURRENT', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'NODE SELECTOR', 'AGE'], wide: ['CONTAINERS', 'IMAGES', 'SELECTOR'], row: (o, w) => daemonSetRow(o as DaemonSet, w) },
  Job: { base: ['NAME', 'STATUS', 'COMPLETIONS', 'DURATION', 'AGE'], wide: ['CONTAINERS', 'IMAGES'], row: (o, w) => jobRow(o as Job, w) },
  ConfigMap: { base: ['NAME', 'DATA', 'AGE'], wide: [], row: (o) => [o.metadata.name, String(Object.keys((o as ConfigMap).data ?? {}).length + Object.keys((o as ConfigMap).binaryData ?? {}).length), age(o.metadata.creationTimestamp)] },
  ClusterRole: { base: ['NAME', 'CREATED AT'], wide: [], row: (o) => [o.metadata.name, o.metadata.creationTimestamp ?? ''] },
  Role: { base: ['NAME', 'CREATED AT'], wide: [], row: (o) => [o.metadata.name, o.metadata.creationTimestamp ?? ''] },
  ClusterRoleBinding: { base: ['NAME', 'ROLE', 'AGE'], wide: ['USERS', 'GROUPS', 'SERVICEACCOUNTS'], row: bindingRow },
  RoleBinding: { base: ['NAME', 'ROLE', 'AGE'], wide: ['USERS', 'GROUPS', 'SERVICEACCOUNTS'], row: bindingRow },
  ServiceAccount: { base: ['NAME', 'SECRETS', 'AGE'], wide: [], row: (o) => [o.metadata.name, String(Array.isArray(o.secrets) ? o.secrets.length : 0), age(o.metadata.creationTimestamp)] },
  Secret: { base: ['NAME', 'TYPE', 'DATA', 'AGE'], wide: [], row: (o) => [o.metadata.name, (o as Secret).type ?? 'Opaque', String(Object.keys((o as Secret).data ?? {}).length), age(o.metadata.creationTimestamp)] },
  Event: { base: ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'], wide: [], row: (o) => eventRow(o as Event) },
  Namespace: { base: ['NAME', 'STATUS', 'AGE'], wide: [], row: (o) => [o.metadata.name, (o as Namespace).status?.phase ?? 'Active', age(o.metadata.creationTimestamp)] },
};

export function printTable(rt: ResourceType, items: KubeObject[], opts: { wide: boolean; allNamespaces: boolean; noHeaders?: boolean }): string {
  const h = HEADERS[rt.kind]!;
  const header = [...(opts.allNamespaces && rt.namespaced ? ['NAMESPACE'] : []), ...h.base, ...(opts.wide ? h.wide : [])];
  const rows = items.map((o) => [...(opts.allNamespaces && rt.namespaced ? [o.metadata.namespace ?? ''] : []), ...h.row(o, opts.wide)]);
  return table(opts.noHeaders ? rows : [header, ...rows]);
}

export function printObjects(items: KubeObject[], format: 'json' | 'yaml' | 'name', single: boolean, rt: ResourceType): string {
  if (format === 'name') return items.map((o) => `${rt.group ? `${rt.singular}.${rt.group}` : rt.singular}/${o.metadata.name}`).join('\n');
  const value = single ? items[0] : { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items };
  return format === 'json' ? JSON.stringify(value, null, 4) : stringify(value).trimEnd();
}
