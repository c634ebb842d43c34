// The fields Kubernetes defines at the levels kubewire reads, so that a typo (`replica:`,
// `contianers:`) is an error, as kubectl's default --validate=strict makes it, instead of a
// silent default. Deeper levels (volumes, resources...) are accepted unchecked; what
// kubewire accepts but does not implement is named in a warning (unimplemented.ts).

const META = ['name', 'generateName', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields', 'selfLink'];

const POD_SPEC = [
  'activeDeadlineSeconds', 'affinity', 'automountServiceAccountToken', 'containers', 'dnsConfig', 'dnsPolicy', 'enableServiceLinks', 'ephemeralContainers', 'hostAliases', 'hostIPC', 'hostNetwork', 'hostPID', 'hostUsers', 'hostname', 'imagePullSecrets', 'initContainers', 'nodeName', 'nodeSelector', 'os', 'overhead', 'preemptionPolicy', 'priority', 'priorityClassName', 'readinessGates', 'resourceClaims', 'resources', 'restartPolicy', 'runtimeClassName', 'schedulerName', 'schedulingGates', 'securityContext', 'serviceAccount', 'serviceAccountName', 'setHostnameAsFQDN', 'shareProcessNamespace', 'subdomain', 'terminationGracePeriodSeconds', 'tolerations', 'topologySpreadConstraints', 'volumes',
];
const CONTAINER = ['args', 'command', 'env', 'envFrom', 'image', 'imagePullPolicy', 'lifecycle', 'livenessProbe', 'name', 'ports', 'readinessProbe', 'resizePolicy', 'resources', 'restartPolicy', 'securityContext', 'startupProbe', 'stdin', 'stdinOnce', 'terminationMessagePath', 'terminationMessagePolicy', 'tty', 'volumeDevices', 'volumeMounts', 'workingDir'];
const CONTAINER_PORT = ['containerPort', 'hostIP', 'hostPort', 'name', 'protocol'];
const DEPLOYMENT_SPEC = ['minReadySeconds', 'paused', 'progressDeadlineSeconds', 'replicas', 'revisionHistoryLimit', 'selector', 'strategy', 'template'];
const STATEFULSET_SPEC = ['minReadySeconds', 'ordinals', 'persistentVolumeClaimRetentionPolicy', 'podManagementPolicy', 'replicas', 'revisionHistoryLimit', 'selector', 'serviceName', 'template', 'updateStrategy', 'volumeClaimTemplates'];
const DAEMONSET_SPEC = ['minReadySeconds', 'revisionHistoryLimit', 'selector', 'template', 'updateStrategy'];
const JOB_SPEC = ['activeDeadlineSeconds', 'backoffLimit', 'backoffLimitPerIndex', 'completionMode', 'completions', 'managedBy', 'manualSelector', 'maxFailedIndexes', 'parallelism', 'podFailurePolicy', 'podReplacementPolicy', 'selector', 'successPolicy', 'suspend', 'template', 'ttlSecondsAfterFinished'];
const PROBE = ['exec', 'failureThreshold', 'grpc', 'httpGet', 'initialDelaySeconds', 'periodSeconds', 'successThreshold', 'tcpSocket', 'terminationGracePeriodSeconds', 'timeoutSeconds'];
const SERVICE_SPEC = ['allocateLoadBalancerNodePorts', 'clusterIP', 'clusterIPs', 'externalIPs', 'externalName', 'externalTrafficPolicy', 'healthCheckNodePort', 'internalTrafficPolicy', 'ipFamilies', 'ipFamilyPolicy', 'loadBalancerClass', 'loadBalancerIP', 'loadBalancerSourceRanges', 'ports', 'publishNotReadyAddresses', 'selector', 'sessionAffinity', 'sessionAffinityConfig', 'trafficDistribution', 'type'];
const SERVICE_PORT = ['appProtocol', 'name', 'nodePort', 'port', 'protocol', 'targetPort'];
const INGRESS_SPEC = ['defaultBackend', 'ingressClassName', 'rules', 'tls'];
const INGRESS_RULE = ['host', 'http'];
const INGRESS_PATH = ['backend', 'path', 'pathType'];
const TOP: Record<string, string[]> = {
  Pod: ['spec', 'status'],
  Deployment: ['spec', 'status'],
  Service: ['spec', 'status'],
  Namespace: ['spec', 'status'],
  Node: ['spec', 'status'],
  EndpointSlice: ['addressType', 'endpoints', 'ports'],
  Ingress: ['spec', 'status'],
  IngressClass: ['spec'],
  NetworkPolicy: ['spec'],
  Secret: ['data', 'immutable', 'stringData', 'type'],
  ConfigMap: ['binaryData', 'data', 'immutable'],
  ServiceAccount: ['automountServiceAccountToken', 'imagePullSecrets', 'secrets'],
  ClusterRole: ['aggregationRule', 'rules'],
  Role: ['rules'],
  ClusterRoleBinding: ['roleRef', 'subjects'],
  RoleBinding: ['roleRef', 'subjects'],
  StatefulSet: ['spec', 'status'],
  DaemonSet: ['spec', 'status'],
  Job: ['spec', 'status'],
};

/** The pod spec a workload's template holds: spec.template.{metadata,spec}. */
const TEMPLATE_SPECS: Record<string, string[]> = { Deployment: DEPLOYMENT_SPEC, StatefulSet: STATEFULSET_SPEC, DaemonSet: DAEMONSET_SPEC, Job: JOB_SPEC };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function check(out: string[], path: string, value: unknown, known: string[]): void {
  if (!isObject(value)) return;
  for (const k of Object.keys(value)) if (!known.includes(k)) out.push(`${path ? `${path}.` : ''}${k}`);
}

function checkPodSpec(out: string[], path: string, spec: unknown): void {
  check(out, path, spec, POD_SPEC);
  if (!isObject(spec)) return;
  for (const list of ['containers', 'initContainers'] as const) {
    const cs = spec[list];
    if (!Array.isArray(cs)) continue;
    cs.forEach((c, i) => {
      check(out, `${path}.${list}[${i}]`, c, CONTAINER);
      const ports = isObject(c) ? c.ports : undefined;
      if (Array.isArray(ports)) ports.forEach((p, j) => check(out, `${path}.${list}[${i}].ports[${j}]`, p, CONTAINER_PORT));
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) if (isObject(c)) check(out, `${path}.${list}[${i}].${probe}`, c[probe], PROBE);
    });
  }
}

/** Fields the object has that its kind does not define (paths like spec.replica); empty when none. */
export function unknownFields(obj: Record<string, unknown>): string[] {
  const kind = String(obj.kind);
  const out: string[] = [];
  if (!TOP[kind]) return out;
  check(out, '', obj, ['apiVersion', 'kind', 'metadata', ...TOP[kind]!]);
  check(out, 'metadata', obj.metadata, META);
  const spec = obj.spec;
  if (kind === 'Pod') checkPodSpec(out, 'spec', spec);
  if (TEMPLATE_SPECS[kind] && isObject(spec)) {
    check(out, 'spec', spec, TEMPLATE_SPECS[kind]!);
    const template = spec.template;
    check(out, 'spec.template', template, ['metadata', 'spec']);
    if (isObject(template)) {
      check(out, 'spec.template.metadata', template.metadata, META);
      checkPodSpec(out, 'spec.template.spec', template.spec);
    }
  }
  if (kind === 'Service' && isObject(spec)) {
    check(out, 'spec', spec, SERVICE_SPEC);
    if (Array.isArray(spec.ports)) spec.ports.forEach((p, i) => check(out, `spec.ports[${i}]`, p, SERVICE_PORT));
  }
  if (kind === 'Ingress' && isObject(spec)) {
    check(out, 'spec', spec, INGRESS_SPEC);
    if (Array.isArray(spec.rules)) {
      spec.rules.forEach((r, i) => {
        check(out, `spec.rules[${i}]`, r, INGRESS_RULE);
        const paths = isObject(r) && isObject(r.http) ? r.http.paths : undefined;
        if (Array.isArray(paths)) paths.forEach((p, j) => check(out, `spec.rules[${i}].http.paths[${j}]`, p, INGRESS_PATH));
      });
    }
  }
  if (kind === 'IngressClass') check(out, 'spec', spec, ['controller', 'parameters']);
  if (kind === 'NetworkPolicy' && isObject(spec)) {
    check(out, 'spec', spec, ['podSelector', 'ingress', 'egress', 'policyTypes']);
    for (const [dir, peers] of [['ingress', 'from'], ['egress', 'to']] as const) {
      const rules = spec[dir];
      if (!Array.isArray(rules)) continue;
      rules.forEach((r, i) => {
        check(out, `spec.${dir}[${i}]`, r, ['ports', peers]);
        const list = isObject(r) ? r[peers] : undefined;
        if (Array.isArray(list)) list.forEach((p, j) => check(out, `spec.${dir}[${i}].${peers}[${j}]`, p, ['podSelector', 'namespaceSelector', 'ipBlock']));
        const ports = isObject(r) ? r.ports : undefined;
        if (Array.isArray(ports)) ports.forEach((p, j) => check(out, `spec.${dir}[${i}].ports[${j}]`, p, ['protocol', 'port', 'endPort']));
      });
    }
  }
  return out;
}
