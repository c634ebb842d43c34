// What a command container is started with, decided from the pod (pure): the user and
// group it runs as (securityContext.runAsUser/runAsGroup, the container's over the pod's;
// the group, when not given, is the user's own in /etc/passwd, as an image's passwd gives
// it, else 0), runAsNonRoot refused for root, and its environment from env and envFrom with
// ConfigMap and Secret keys and the pod's own fields (the downward API's fieldRef), and the
// Services' variables (FOO_SERVICE_HOST, Docker's links) under the user's own.

import type { ConfigMap, Container, Pod, Secret, Service } from '../api/types.ts';

export class ContainerConfigError extends Error {
  override name = 'ContainerConfigError';
}

/** The primary group of each uid in a passwd file's text. */
export function passwdGroups(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) out.set(Number(f[2]), Number(f[3]));
  }
  return out;
}

/** The uid and gid the container runs as; undefined when it runs as kubewire does (root). */
export function runAs(pod: Pod, c: Container, groups: Map<number, number>): { uid: number; gid: number } | undefined {
  const sc = c.securityContext ?? {};
  const psc = pod.spec.securityContext ?? {};
  const uid = sc.runAsUser ?? psc.runAsUser;
  const gid = sc.runAsGroup ?? psc.runAsGroup;
  const nonRoot = sc.runAsNonRoot ?? psc.runAsNonRoot;
  if (nonRoot && !uid) throw new ContainerConfigError(uid === 0 ? 'container\'s runAsUser breaks non-root policy (pod: "' + pod.metadata.name + '", container: ' + c.name + ')' : 'container has runAsNonRoot and image will run as root (pod: "' + pod.metadata.name + '", container: ' + c.name + ')');
  if (uid === undefined && gid === undefined) return undefined;
  return { uid: uid ?? 0, gid: gid ?? (uid !== undefined ? (groups.get(uid) ?? 0) : 0) };
}

export interface EnvSources {
  configMap(name: string): ConfigMap | undefined;
  secret(name: string): Secret | undefined;
  /** The Services whose variables the container gets (servicesForEnv). */
  services?(): Service[];
}

const envName = (s: string) => s.replace(/-/g, '_').toUpperCase();

/**
 * The variables the kubelet sets for each Service with a ClusterIP (pkg/kubelet/envvars
 * FromServices): NAME_SERVICE_HOST, NAME_SERVICE_PORT (the first port) and one per named
 * port, and Docker's link variables (NAME_PORT, NAME_PORT_80_TCP, ..._PROTO, _PORT, _ADDR).
 */
export function serviceEnv(services: Service[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const svc of services) {
    const ip = svc.spec.clusterIP;
    const ports = svc.spec.ports ?? [];
    if (!ip || ip === 'None' || !ports.length) continue;
    const prefix = envName(svc.metadata.name);
    env[`${prefix}_SERVICE_HOST`] = ip;
    env[`${prefix}_SERVICE_PORT`] = String(ports[0]!.port);
    for (const p of ports) if (p.name) env[`${prefix}_SERVICE_PORT_${envName(p.name)}`] = String(p.port);
    const hostPort = (port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
    ports.forEach((p, i) => {
      const proto = (p.protocol ?? 'TCP').toLowerCase();
      if (i === 0) env[`${prefix}_PORT`] = `${proto}://${hostPort(p.port)}`;
      const pp = `${prefix}_PORT_${p.port}_${proto.toUpperCase()}`;
      Object.assign(env, { [pp]: `${proto}://${hostPort(p.port)}`, [`${pp}_PROTO`]: proto, [`${pp}_PORT`]: String(p.port), [`${pp}_ADDR`]: ip });
    });
  }
  return env;
}

/**
 * Whose variables a pod's containers get (the kubelet's getServiceEnvVarMap): the Services
 * of its namespace when spec.enableServiceLinks is not false, and always the API server's
 * own, default/kubernetes (unless one of the namespace's has that name).
 */
export function servicesForEnv(pod: Pod, all: Service[]): Service[] {
  const byName = new Map<string, Service>();
  for (const s of all) if (s.metadata.namespace === 'default' && s.metadata.name === 'kubernetes') byName.set(s.metadata.name, s);
  if (pod.spec.enableServiceLinks !== false) for (const s of all) if (s.metadata.namespace === pod.metadata.namespace) byName.set(s.metadata.name, s);
  return [...byName.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

function secretValue(s: Secret, key: string): string | undefined {
  const v = s.data?.[key];
  return v === undefined ? s.stringData?.[key] : Buffer.from(v, 'base64').toString('utf8');
}

/** The downward API's fields a variable may name. */
function podField(pod: Pod, path: string, podIP: string, hostIP: string): string | undefined {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return pod.metadata[m[1] as 'labels' | 'annotations']?.[m[2]!];
  const fields: Record<string, string | undefined> = {
    'metadata.name': pod.metadata.name,
    'metadata.namespace': pod.metadata.namespace,
    'metadata.uid': pod.metadata.uid,
    'spec.nodeName': pod.spec.nodeName,
    'spec.serviceAccountName': (pod.spec.serviceAccountName as string | undefined) ?? 'default',
    'status.podIP': podIP,
    'status.podIPs': podIP,
    'status.hostIP': hostIP,
    'status.hostIPs': hostIP,
  };
  return fields[path];
}

/** The container's variables from envFrom then env (env wins), then the Services' where the user set none, as the kubelet resolves them. */
export function containerEnv(pod: Pod, c: Container, src: EnvSources, ips: { podIP: string; hostIP: string }): Record<string, string> {
  const env: Record<string, string> = {};
  const missing = (kind: string, name: string) => new ContainerConfigError(`${kind} "${name}" not found`);
  for (const from of c.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.configMapRef) {
      const cm = src.configMap(from.configMapRef.name);
      if (!cm) {
        if (from.configMapRef.optional) continue;
        throw missing('configmap', from.configMapRef.name);
      }
      for (const [k, v] of Object.entries(cm.data ?? {})) env[`${prefix}${k}`] = v;
    } else if (from.secretRef) {
      const s = src.secret(from.secretRef.name);
      if (!s) {
        if (from.secretRef.optional) continue;
        throw missing('secret', from.secretRef.name);
      }
      for (const k of Object.keys({ ...s.data, ...s.stringData })) env[`${prefix}${k}`] = secretValue(s, k) ?? '';
    }
  }
  for (const e of c.env ?? []) {
    const from = e.valueFrom;
    if (!from) {
      env[e.name] = e.value ?? '';
      continue;
    }
    if (from.configMapKeyRef) {
      const ref = from.configMapKeyRef;
      const cm = src.configMap(ref.name);
      const v = cm?.data?.[ref.key];
      if (v === undefined && !ref.optional) throw cm ? new ContainerConfigError(`couldn't find key ${ref.key} in ConfigMap ${pod.metadata.namespace}/${ref.name}`) : missing('configmap', ref.name);
      if (v !== undefined) env[e.name] = v;
    } else if (from.secretKeyRef) {
      const ref = from.secretKeyRef;
      const s = src.secret(ref.name);
      const v = s && secretValue(s, ref.key);
      if (v === undefined && !ref.optional) throw s ? new ContainerConfigError(`couldn't find key ${ref.key} in Secret ${pod.metadata.namespace}/${ref.name}`) : missing('secret', ref.name);
      if (v !== undefined) env[e.name] = v;
    } else if (from.fieldRef) {
      env[e.name] = podField(pod, from.fieldRef.fieldPath, ips.podIP, ips.hostIP) ?? '';
    }
  }
  return { ...serviceEnv(src.services?.() ?? []), ...env };
}
