// The API server's defaults for core/v1 objects, as upstream fills them in on create and
// update (kubernetes/kubernetes pkg/apis/core/v1/defaults.go, and the ServiceAccount
// admission plugin's serviceAccountName): what `kubectl get -o yaml` and `describe` show
// (`Port: 8080/TCP`, `imagePullPolicy`, `dnsPolicy`...). Service defaults live with the
// Service's allocations (apiserver/services.ts). Pure: each function returns a new object.

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- objects as clients send them

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The image's tag ("latest" when it has neither tag nor digest), as parsers.ParseImageName reads it. */
export function imageTag(image: string): string | undefined {
  const [name, digest] = image.split('@') as [string, string | undefined];
  const last = name.slice(name.lastIndexOf('/') + 1);
  const i = last.lastIndexOf(':');
  if (i >= 0) return last.slice(i + 1);
  return digest ? undefined : 'latest';
}

/** SetDefaults_Container: Always for :latest or untagged images, IfNotPresent otherwise. */
export function defaultImagePullPolicy(image: unknown): 'Always' | 'IfNotPresent' {
  return typeof image === 'string' && imageTag(image) === 'latest' ? 'Always' : 'IfNotPresent';
}

function probe(p: unknown): unknown {
  if (!isObj(p)) return p;
  const out: Obj = { ...p, timeoutSeconds: p.timeoutSeconds ?? 1, periodSeconds: p.periodSeconds ?? 10, successThreshold: p.successThreshold ?? 1, failureThreshold: p.failureThreshold ?? 3 };
  if (isObj(p.httpGet)) out.httpGet = { ...p.httpGet, path: p.httpGet.path || '/', scheme: p.httpGet.scheme || 'HTTP' };
  return out;
}

function env(e: unknown): unknown {
  if (!isObj(e) || !isObj(e.valueFrom) || !isObj(e.valueFrom.fieldRef)) return e;
  return { ...e, valueFrom: { ...e.valueFrom, fieldRef: { apiVersion: 'v1', ...e.valueFrom.fieldRef } } };
}

/** A container (or init container) with upstream's defaults. */
export function defaultContainer(c: unknown): unknown {
  if (!isObj(c)) return c;
  const out: Obj = {
    ...c,
    imagePullPolicy: c.imagePullPolicy || defaultImagePullPolicy(c.image),
    terminationMessagePath: c.terminationMessagePath || '/dev/termination-log',
    terminationMessagePolicy: c.terminationMessagePolicy || 'File',
    resources: c.resources ?? {},
  };
  if (Array.isArray(c.ports)) out.ports = c.ports.map((p) => (isObj(p) ? { ...p, protocol: p.protocol || 'TCP' } : p));
  if (Array.isArray(c.env)) out.env = c.env.map(env);
  for (const k of ['readinessProbe', 'livenessProbe', 'startupProbe']) if (c[k] !== undefined) out[k] = probe(c[k]);
  return out;
}

function volume(v: unknown): unknown {
  if (!isObj(v)) return v;
  for (const k of ['configMap', 'secret', 'projected', 'downwardAPI']) if (isObj(v[k])) return { ...v, [k]: { defaultMode: 420, ...v[k] } };
  return v;
}

/** SetDefaults_PodSpec: what every pod spec gets, in a pod or in a template. */
export function defaultPodSpec(spec: unknown): unknown {
  if (!isObj(spec)) return spec;
  const out: Obj = {
    ...spec,
    dnsPolicy: spec.dnsPolicy || 'ClusterFirst',
    restartPolicy: spec.restartPolicy || 'Always',
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? 30,
    securityContext: spec.securityContext ?? {},
    schedulerName: spec.schedulerName || 'default-scheduler',
  };
  if (Array.isArray(spec.containers)) out.containers = spec.containers.map(defaultContainer);
  if (Array.isArray(spec.initContainers)) out.initContainers = spec.initContainers.map(defaultContainer);
  if (Array.isArray(spec.volumes)) out.volumes = spec.volumes.map(volume);
  // hostNetwork pods' container ports are host ports.
  if (spec.hostNetwork === true && Array.isArray(out.containers)) {
    out.containers = out.containers.map((c: Obj) => (Array.isArray(c.ports) ? { ...c, ports: c.ports.map((p: Obj) => ({ ...p, hostPort: p.hostPort ?? p.containerPort })) } : c));
  }
  return out;
}

/** A pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job): its spec defaulted. */
export function defaultTemplate(t: unknown): unknown {
  return isObj(t) && isObj(t.spec) ? { ...t, spec: defaultPodSpec(t.spec) } : t;
}

/** SetDefaults_Pod, and the ServiceAccount admission plugin's account "default". */
export function defaultPod<T extends Obj>(pod: T): T {
  if (!isObj(pod.spec)) return pod;
  const spec = defaultPodSpec(pod.spec) as Obj;
  spec.enableServiceLinks ??= true;
  spec.serviceAccountName ||= spec.serviceAccount || 'default';
  spec.serviceAccount ||= spec.serviceAccountName;
  return { ...pod, spec };
}

/** A Namespace: the `kubernetes` finalizer and the kubernetes.io/metadata.name label. */
export function defaultNamespace<T extends Obj>(ns: T): T {
  const name = ns.metadata?.name;
  return {
    ...ns,
    metadata: { ...ns.metadata, labels: { ...(ns.metadata?.labels ?? {}), ...(typeof name === 'string' && name ? { 'kubernetes.io/metadata.name': name } : {}) } },
    spec: { ...(isObj(ns.spec) ? ns.spec : {}), finalizers: isObj(ns.spec) && Array.isArray(ns.spec.finalizers) ? ns.spec.finalizers : ['kubernetes'] },
  };
}
