// `kubewire describe node|pod|deployment NAME`: kubectl's description, followed by the
// seed made visible from the kernel itself: the node's podCIDR and cni0, each veth pair
// with both ends (ifindex, MAC), the bridge FDB, the neighbour (ARP) table and the routes.

import { stringify } from 'yaml';
import { formatSelector } from '../api/labels.ts';
import type { DaemonSet, Deployment, EndpointSlice, Event, Ingress, IngressBackend, Job, Node, Pod, Probe, ReplicaSet, Service, StatefulSet } from '../api/types.ts';
import { upstreamOf } from '../ingress/routes.ts';
import { carriersHeading, serviceCarriers } from '../proxy/carry.ts';
import { DEFAULT_CLUSTER_DOMAIN, nodeMAC, UNDERLAY, VPC, VXLAN, type ClusterPlan, type NodePlan } from '../cluster/plan.ts';
import { checkNames, SOURCE_CHECK } from '../vpc/source-check.ts';
import { ipamdCheckpoint, nodeFiles } from '../cluster/topology.ts';
import { clusterDir } from '../state/paths.ts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsPath, type Addressing, type Dataplane, type LinkInfo, type RouteInfo } from '../dataplane/port.ts';
import { age, podStatus, table } from './print.ts';
import type { PodRecordBase } from '../node/records.ts';

const indent = (text: string, n = 2) => text.split('\n').map((l) => (l ? ' '.repeat(n) + l : l)).join('\n');

function fields(rows: Array<[string, string | undefined]>): string {
  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w)}${(v ?? '<none>').split('\n').join(`\n${' '.repeat(w)}`)}`).join('\n');
}

function labels(l: Record<string, string> | undefined): string {
  const entries = Object.entries(l ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join('\n') : '<none>';
}

function ipv4Of(link: LinkInfo | undefined): string | undefined {
  const a = link?.addr_info?.find((x) => x.family === 'inet');
  return a && `${a.local}/${a.prefixlen}`;
}

function formatRoute(r: RouteInfo): string {
  return [r.dst, r.gateway && `via ${r.gateway}`, r.dev && `dev ${r.dev}`, r.protocol && `proto ${r.protocol}`, r.scope && r.scope !== 'global' ? `scope ${r.scope}` : '', r.prefsrc && `src ${r.prefsrc}`].filter(Boolean).join(' ');
}

function linkLine(l: LinkInfo): string {
  return `${l.ifname}@if${l.link_index ?? '-'}  ifindex ${l.ifindex}  mac ${l.address ?? '-'}`;
}


export async function describeNode(dp: Dataplane, node: Node, pods: Pod[], plan: ClusterPlan, attachments: PodRecordBase[] = []): Promise<string> {
  const np = plan.nodes.find((n) => n.name === node.metadata.name);
  const out: string[] = [];
  out.push(fields([
    ['Name', node.metadata.name],
    ['Labels', labels(node.metadata.labels)],
    ['CreationTimestamp', node.metadata.creationTimestamp],
    ['PodCIDR', node.spec?.podCIDR],
    ['PodCIDRs', node.spec?.podCIDRs?.join(',')],
    ['Unschedulable', String(Boolean(node.spec?.unschedulable))],
  ]));
  out.push('Addresses:\n' + indent((node.status?.addresses ?? []).map((a) => `${a.type}:  ${a.address}`).join('\n')));
  out.push('Conditions:\n' + indent(table([['Type', 'Status', 'Reason', 'Message'], ...(node.status?.conditions ?? []).map((c) => [c.type, c.status, c.reason ?? '', c.message ?? ''])])));
  out.push(`Non-terminated Pods:          (${pods.length} in total)\n` + indent(table([['Namespace', 'Name', 'IP', 'Age'], ...pods.map((p) => [p.metadata.namespace ?? '', p.metadata.name, p.status?.podIP ?? '<none>', age(p.metadata.creationTimestamp)])])));
  if (!np) return out.join('\n');

  const ns = netnsPath(np.netns);
  if (dp.netnsState(ns) === 'missing') return [...out, `Network (from the kernel):\n  the node's namespace ${np.netns} is gone`].join('\n');
  const snap = await dp.at(ns).addressing();
  const fdb = await dp.at(ns).fdb('cni0').catch(() => []);
  const cni0 = snap.links.find((l) => l.ifname === 'cni0');
  const eth0 = snap.links.find((l) => l.ifname === 'eth0');
  const ports = snap.links.filter((l) => l.master === 'cni0');
  const net: string[] = [];
  net.push(fields([
    ['Namespace', `${np.netns} (${ns})`],
    ['eth0', `${ipv4Of(eth0) ?? '-'}  mac ${eth0?.address ?? '-'}  (on the underlay; default gateway ${UNDERLAY.router})`],
    plan.spec.mode === 'vpc'
      ? ['Pod network', `vpc: a ptp pair per pod, no bridge; each pod's gateway is ${VPC.podGateway} on its pair's host end; pods take VPC addresses (below)`]
      : ['cni0 (bridge)', cni0 ? `${ipv4Of(cni0) ?? '-'}  mac ${cni0.address}  ifindex ${cni0.ifindex}  (the pods' gateway)` : 'not created yet (the first pod creates it)'],
    ['Service proxy', `${plan.spec.proxyMode ?? 'iptables'} mode`],
    ['iptables', plan.spec.iptablesBackend ? `${plan.spec.iptablesBackend} (iptables-${plan.spec.iptablesBackend}-restore: kube-proxy's rules, masquerade, hostPorts)` : 'the host\'s default (iptables-restore)'],
  ]));
  if (ports.length) {
    net.push(`Bridge ports (host ends of the pods' veth pairs):\n` + indent(table([['PORT', 'IFINDEX', 'MAC', 'PEER (eth0 in the pod)', 'POD', 'STATE'], ...ports.map((p) => {
      const a = attachments.find((x) => x.hostVeth === p.ifname);
      return [p.ifname, String(p.ifindex), p.address ?? '', `if${p.link_index ?? '-'}${a?.mac ? ` ${a.mac}` : ''}`, a ? `${a.namespace}/${a.name} ${a.ip}` : '', p.operstate ?? ''];
    })])));
  }
  const learned = fdb.filter((e) => !e.flags?.includes('self') && e.state !== 'permanent' && !e.mac.startsWith('33:33') && !e.mac.startsWith('01:00:5e'));
  if (learned.length) {
    const owner = (mac: string, port: string) => {
      const a = attachments.find((x) => x.mac === mac);
      if (a) return `pod ${a.namespace}/${a.name} (${a.ip})`;
      return port === 'cni0' ? 'the bridge itself' : '';
    };
    net.push('Bridge FDB (MACs cni0 learned, and the port each is behind):\n' + indent(table([['MAC', 'PORT', 'OWNER', 'STATE'], ...learned.map((e) => [e.mac, e.ifname, owner(e.mac, e.ifname), e.state ?? 'learned'])])));
  }
  if (plan.spec.mode === 'vxlan') {
    // flannel's vxlan backend: the VTEP, and where each peer VTEP's MAC is (the FDB's dst: a node's address).
    const dev = snap.links.find((l) => l.ifname === VXLAN.device);
    const entries = await dp.at(ns).deviceFdb(VXLAN.device).catch(() => []);
    const peers = entries.filter((e) => e.dst);
    net.push(`Overlay (VXLAN, as flannel's backend):\n` + indent([
      dev ? `${VXLAN.device}  ${ipv4Of(dev) ?? '-'}  mac ${dev.address}  mtu ${dev.mtu}  VNI ${VXLAN.vni}, UDP ${VXLAN.port}, local ${np.ip} on eth0, learning off` : `${VXLAN.device} is missing`,
      'FDB (peer VTEP MAC → the node its frames are wrapped to):',
      indent(peers.length ? table([['MAC', 'DST', 'STATE'], ...peers.map((e) => [e.mac, e.dst!, e.state ?? (e.flags ?? []).join(',')])]) : '<none>'),
    ].join('\n')));
  }
  if (plan.spec.mode === 'vpc') net.push(...(await vpcSection(dp, plan, np, snap, attachments)));
  const neigh = snap.neighbours.filter((n) => !n.dst.includes(':'));
  net.push('Neighbours (ARP):\n' + indent(neigh.length ? table([['IP', 'DEV', 'MAC', 'STATE'], ...neigh.map((n) => [n.dst, n.dev, n.lladdr ?? '-', (n.state ?? []).join(',')])]) : '<none>'));
  net.push('Routes:\n' + indent(snap.routes.map(formatRoute).join('\n')));
  out.push('Network (from the kernel):\n' + indent(net.join('\n')));
  return out.join('\n');
}

/** The names the cluster DNS gives a Service (records.ts answers them). */
export function serviceDnsNames(svc: Service, slices: EndpointSlice[], zone: string): string[] {
  const base = `${svc.metadata.name}.${svc.metadata.namespace}.svc.${zone}`;
  if (svc.spec.type === 'ExternalName') return [`${base} (CNAME ${svc.spec.externalName ?? ''})`];
  const headless = svc.spec.clusterIP === 'None';
  const names = [`${base} (A: ${headless ? 'each ready endpoint' : svc.spec.clusterIP})`];
  for (const p of svc.spec.ports ?? []) if (p.name) names.push(`_${p.name}._${(p.protocol ?? 'TCP').toLowerCase()}.${base} (SRV)`);
  if (headless) for (const e of slices.flatMap((s) => s.endpoints)) if (e.hostname) names.push(`${e.hostname}.${base} (A: ${e.addresses[0]})`);
  return names;
}

/** A probe on one line, as kubectl describe prints it. */
export function describeProbe(p: Probe): string {
  let what = 'unknown';
  if (p.httpGet) what = `http-get ${(p.httpGet.scheme ?? 'HTTP').toLowerCase()}://${p.httpGet.host ?? ''}:${String(p.httpGet.port)}${p.httpGet.path ?? ''}`;
  else if (p.tcpSocket) what = `tcp-socket ${p.tcpSocket.host ?? ''}:${String(p.tcpSocket.port)}`;
  else if (p.grpc) what = `grpc <pod>:${p.grpc.port} ${p.grpc.service ?? ''}`.trimEnd();
  else if (p.exec) what = `exec [${(p.exec.command ?? []).join(' ')}]`;
  return `${what} delay=${p.initialDelaySeconds ?? 0}s timeout=${p.timeoutSeconds ?? 1}s period=${p.periodSeconds ?? 10}s #success=${p.successThreshold ?? 1} #failure=${p.failureThreshold ?? 3}`;
}

/** A pod's resolv.conf and hostname as its node agent wrote them (podView reads them from its directory). */
export interface PodViewFiles {
  resolv: string;
  hostname: string;
}

/** The view files in a pod's directory (undefined until its sandbox has them). */
export function podView(podDir: string | undefined): PodViewFiles | undefined {
  if (!podDir || !existsSync(join(podDir, 'etc', 'resolv.conf'))) return undefined;
  return { resolv: readFileSync(join(podDir, 'etc', 'resolv.conf'), 'utf8'), hostname: readFileSync(join(podDir, 'etc', 'hostname'), 'utf8') };
}

export async function describePod(dp: Dataplane, pod: Pod, plan: ClusterPlan | undefined, netnsOfPod: string | undefined, view?: PodViewFiles): Promise<string> {
  const out: string[] = [];
  const owner = (pod.metadata.ownerReferences as Array<{ kind: string; name: string }> | undefined)?.[0];
  const st = pod.status ?? {};
  const np = plan?.nodes.find((n) => n.name === pod.spec.nodeName);
  out.push(fields([
    ['Name', pod.metadata.name],
    ['Namespace', pod.metadata.namespace],
    ['Node', pod.spec.nodeName ? `${pod.spec.nodeName}/${st.hostIP ?? np?.ip ?? ''}` : '<none>'],
    ['Start Time', st.startTime],
    ['Labels', labels(pod.metadata.labels)],
    ['Status', podStatus(pod)],
    ['IP', st.podIP],
    ['IPs', st.podIPs?.map((i) => `IP: ${i.ip}`).join('\n') ?? '<none>'],
    ['Controlled By', owner ? `${owner.kind}/${owner.name}` : undefined],
  ]));
  const containers = pod.spec.containers.map((c) => {
    const cs = st.containerStatuses?.find((s) => s.name === c.name);
    const state: Array<[string, string | undefined]> = cs?.state.running
      ? [['State', 'Running'], ['  Started', cs.state.running.startedAt]]
      : cs?.state.waiting
        ? [['State', 'Waiting'], ['  Reason', cs.state.waiting.reason]]
        : cs?.state.terminated
          ? [['State', 'Terminated'], ['  Reason', cs.state.terminated.reason], ['  Exit Code', String(cs.state.terminated.exitCode)]]
          : [['State', 'Waiting'], ['  Reason', 'ContainerCreating']];
    const last = cs?.lastState?.terminated;
    return `${c.name}:\n` + indent(fields([
      ['Image', c.image],
      ['Port', (c.ports ?? []).map((p) => `${p.containerPort}/${p.protocol ?? 'TCP'}`).join(', ') || '<none>'],
      ['Command', c.command?.join(' ')],
      ['Args', c.args?.join(' ')],
      ...state,
      ...(last ? ([['Last State', 'Terminated'], ['  Reason', last.reason], ['  Exit Code', String(last.exitCode)]] as Array<[string, string]>) : []),
      ['Ready', String(cs?.ready ?? false)],
      ['Restart Count', String(cs?.restartCount ?? 0)],
      ...(['livenessProbe', 'readinessProbe', 'startupProbe'] as const).filter((k) => c[k]).map((k): [string, string] => [{ livenessProbe: 'Liveness', readinessProbe: 'Readiness', startupProbe: 'Startup' }[k], describeProbe(c[k]!)]),
    ]));
  });
  out.push('Containers:\n' + indent(containers.join('\n')));
  if (view) {
    // As the kubelet wrote them for the pod (what its containers see over /etc).
    out.push(fields([
      ['DNS Policy', pod.spec.dnsPolicy ?? 'ClusterFirst'],
      ['Hostname', view.hostname.trim()],
      ['resolv.conf', view.resolv.trimEnd()],
    ]));
  }
  out.push('Conditions:\n' + indent(table([['Type', 'Status'], ...(st.conditions ?? []).map((c) => [c.type, c.status])])));
  if (!np || !netnsOfPod) return out.join('\n');

  // Both ends of the pod's veth pair: eth0 inside, its peer on cni0 in the node.
  // Read at once: each is a tool's start (0.05-0.15 s in a kernel of its own).
  const [inside, node, fdb] = await Promise.all([dp.at(netnsOfPod).addressing(), dp.at(netnsPath(np.netns)).addressing(), dp.at(netnsPath(np.netns)).fdb('cni0').catch(() => [])]);
  const eth0 = inside.links.find((l) => l.ifname === 'eth0');
  const hostEnd = node.links.find((l) => l.ifindex === eth0?.link_index && l.master === 'cni0');
  const learned = fdb.find((e) => e.mac === eth0?.address && !e.flags?.includes('self'));
  const nodeNeigh = node.neighbours.find((n) => n.dst === st.podIP);
  const net: string[] = [];
  net.push(fields([
    ['Pod namespace', netnsOfPod],
    ['eth0 (in the pod)', eth0 ? `${linkLine(eth0)}  ${ipv4Of(eth0) ?? ''}` : 'missing'],
    ['veth (on the node)', hostEnd ? `${linkLine(hostEnd)}  master cni0 on ${np.name}` : 'missing'],
    ['Bridge FDB', learned ? `${learned.mac} behind port ${learned.ifname}` : 'not learned yet (no frame from the pod since the entry aged out)'],
    ['Node ARP entry', nodeNeigh ? `${nodeNeigh.dst} -> ${nodeNeigh.lladdr ?? '-'} (${(nodeNeigh.state ?? []).join(',')}) on ${nodeNeigh.dev}` : 'none yet (the node has not talked to this pod)'],
  ]));
  net.push('Pod routes:\n' + indent(inside.routes.map(formatRoute).join('\n')));
  const neigh = inside.neighbours.filter((n) => !n.dst.includes(':'));
  net.push('Pod neighbours (ARP):\n' + indent(neigh.length ? table([['IP', 'MAC', 'STATE'], ...neigh.map((n) => [n.dst, n.lladdr ?? '-', (n.state ?? []).join(',')])]) : '<none>'));
  out.push('Network (from the kernel):\n' + indent(net.join('\n')));
  return out.join('\n');
}

export function describeDeployment(d: Deployment, pods: Pod[], replicaSets: ReplicaSet[] = []): string {
  const s = d.status ?? {};
  // kubectl's NewReplicaSet/OldReplicaSets lines: the one of the current template, the others that still have pods.
  const hash = (rs: ReplicaSet) => rs.metadata.labels?.['pod-template-hash'];
  const sets = [...replicaSets].sort((a, b) => Number(a.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0) - Number(b.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0));
  const newest = sets.at(-1);
  const rsLine = (rs: ReplicaSet) => `${rs.metadata.name} (${rs.status?.replicas ?? 0}/${rs.spec.replicas ?? 1} replicas created)`;
  const olds = sets.filter((rs) => rs !== newest && hash(rs) && (rs.spec.replicas ?? 1) > 0);
  return [
    fields([
      ['Name', d.metadata.name],
      ['Namespace', d.metadata.namespace],
      ['CreationTimestamp', d.metadata.creationTimestamp],
      ['Labels', labels(d.metadata.labels)],
      ['Selector', formatSelector(d.spec.selector)],
      ['Replicas', `${d.spec.replicas ?? 1} desired | ${s.updatedReplicas ?? 0} updated | ${s.replicas ?? 0} total | ${s.availableReplicas ?? 0} available | ${s.unavailableReplicas ?? 0} unavailable`],
      ['StrategyType', d.spec.strategy?.type ?? 'RollingUpdate'],
    ]),
    'Pod Template:\n' + indent(stringify(d.spec.template).trimEnd()),
    'Conditions:\n' + indent(table([['Type', 'Status', 'Reason'], ...(s.conditions ?? []).map((c) => [c.type, c.status, c.reason ?? ''])])),
    fields([
      ['OldReplicaSets', olds.length ? olds.map(rsLine).join(', ') : '<none>'],
      ['NewReplicaSet', newest ? rsLine(newest) : '<none>'],
    ]),
    'Pods:\n' + indent(table([['NAME', 'STATUS', 'IP', 'NODE'], ...pods.map((p) => [p.metadata.name, podStatus(p), p.status?.podIP ?? '<none>', p.spec.nodeName ?? '<none>'])])),
  ].join('\n');
}

/** `describe statefulset|daemonset|job`: kubectl's fields, the pod template, the status and the pods. */
export function describeWorkload(o: StatefulSet | DaemonSet | Job | ReplicaSet, pods: Pod[]): string {
  const head: Array<[string, string | undefined]> = [
    ['Name', o.metadata.name],
    ['Namespace', o.metadata.namespace],
    ['CreationTimestamp', o.metadata.creationTimestamp],
    ['Labels', labels(o.metadata.labels)],
  ];
  let status: Array<[string, string | undefined]> = [];
  const phases = (p: string) => pods.filter((x) => x.status?.phase === p).length;
  if (o.kind === 'ReplicaSet') {
    const rs = o as ReplicaSet;
    const owner = rs.metadata.ownerReferences?.find((r) => r.controller);
    status = [
      ['Selector', formatSelector(rs.spec.selector)],
      ['Annotations', labels(rs.metadata.annotations)],
      ['Controlled By', owner ? `${owner.kind}/${owner.name}` : undefined],
      ['Replicas', `${rs.status?.replicas ?? 0} current / ${rs.spec.replicas ?? 1} desired`],
      ['Pods Status', `${phases('Running')} Running / ${phases('Pending')} Waiting / ${phases('Succeeded')} Succeeded / ${phases('Failed')} Failed`],
    ];
  } else if (o.kind === 'StatefulSet') {
    const s = o as StatefulSet;
    status = [
      ['Selector', formatSelector(s.spec.selector)],
      ['Replicas', `${s.spec.replicas ?? 1} desired | ${s.status?.replicas ?? 0} total`],
      ['Pods Status', `${s.status?.readyReplicas ?? 0} Ready / ${s.status?.updatedReplicas ?? 0} Updated`],
      ['Service', s.spec.serviceName],
      ['Pod Management Policy', s.spec.podManagementPolicy ?? 'OrderedReady'],
      ['Update Strategy', s.spec.updateStrategy?.type ?? 'RollingUpdate'],
    ];
  } else if (o.kind === 'DaemonSet') {
    const d = o as DaemonSet;
    const st = d.status;
    status = [
      ['Selector', formatSelector(d.spec.selector)],
      ['Node-Selector', d.spec.template.spec.nodeSelector ? labels(d.spec.template.spec.nodeSelector) : '<none>'],
      ['Desired Number of Nodes Scheduled', String(st?.desiredNumberScheduled ?? 0)],
      ['Current Number of Nodes Scheduled', String(st?.currentNumberScheduled ?? 0)],
      ['Number of Nodes Scheduled with Up-to-date Pods', String(st?.updatedNumberScheduled ?? 0)],
      ['Number of Nodes Scheduled with Available Pods', String(st?.numberAvailable ?? 0)],
      ['Number of Nodes Misscheduled', String(st?.numberMisscheduled ?? 0)],
    ];
  } else {
    const j = o as Job;
    const st = j.status;
    status = [
      ['Parallelism', String(j.spec.parallelism ?? 1)],
      ['Completions', String(j.spec.completions ?? (j.spec.parallelism === undefined ? 1 : '<unset>'))],
      ['Backoff Limit', String(j.spec.backoffLimit ?? 6)],
      ['Start Time', st?.startTime],
      ['Completed At', st?.completionTime],
      ['Pods Statuses', `${st?.active ?? 0} Active (${st?.ready ?? 0} Ready) / ${phases('Succeeded')} Succeeded / ${phases('Failed')} Failed`],
    ];
  }
  const conditions = ((o.status as { conditions?: Array<{ type: string; status: string; reason?: string }> } | undefined)?.conditions ?? []);
  return [
    fields([...head, ...status]),
    'Pod Template:\n' + indent(stringify(o.spec.template).trimEnd()),
    ...(conditions.length ? ['Conditions:\n' + indent(table([['Type', 'Status', 'Reason'], ...conditions.map((c) => [c.type, c.status, c.reason ?? ''])]))] : []),
    'Pods:\n' + indent(table([['NAME', 'STATUS', 'IP', 'NODE'], ...pods.map((p) => [p.metadata.name, podStatus(p), p.status?.podIP ?? '<none>', p.spec.nodeName ?? '<none>'])])),
  ].join('\n');
}

/** `describe service`: kubectl's view, then where each endpoint runs and the chains that carry the Service on a node. */
export async function describeService(dp: Dataplane, svc: Service, slices: EndpointSlice[], plan: ClusterPlan | undefined): Promise<string> {
  const s = svc.spec;
  const endpoints = slices.flatMap((sl) => sl.endpoints.map((e) => ({ e, ports: sl.ports ?? [] })));
  const out: string[] = [];
  out.push(fields([
    ['Name', svc.metadata.name],
    ['Namespace', svc.metadata.namespace],
    ['Labels', labels(svc.metadata.labels)],
    ['Selector', s.selector ? Object.entries(s.selector).map(([k, v]) => `${k}=${v}`).join(',') : '<none>'],
    ['Type', s.type ?? 'ClusterIP'],
    ['IP', s.clusterIP],
    ['IPs', (s.clusterIPs ?? []).join(',') || '<none>'],
    ...(s.externalIPs?.length ? [['External IPs', s.externalIPs.join(',')] as [string, string]] : []),
    ['Session Affinity', s.sessionAffinity ?? 'None'],
    ...(s.externalTrafficPolicy ? [['External Traffic Policy', s.externalTrafficPolicy] as [string, string]] : []),
    ['Internal Traffic Policy', s.internalTrafficPolicy ?? 'Cluster'],
    ['DNS', serviceDnsNames(svc, slices, plan?.spec.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN).join('\n')],
  ]));
  for (const p of s.ports ?? []) {
    const eps = endpoints.filter((x) => x.ports.some((ep) => (ep.name ?? '') === (p.name ?? '')) && x.e.conditions.ready !== false).map((x) => `${x.e.addresses[0]}:${x.ports.find((ep) => (ep.name ?? '') === (p.name ?? ''))!.port}`);
    out.push(fields([
      ['Port', `${p.name || '<unset>'}  ${p.port}/${p.protocol ?? 'TCP'}`],
      ['TargetPort', `${p.targetPort ?? p.port}/${p.protocol ?? 'TCP'}`],
      ...(p.nodePort ? [['NodePort', `${p.name || '<unset>'}  ${p.nodePort}/${p.protocol ?? 'TCP'}`] as [string, string]] : []),
      ['Endpoints', eps.join(',') || '<none>'],
    ]));
  }
  const byNode = new Map<string, string[]>();
  for (const { e } of endpoints) {
    const state = e.conditions.terminating ? ' (terminating)' : e.conditions.ready === false ? ' (not ready)' : '';
    byNode.set(e.nodeName ?? '<none>', [...(byNode.get(e.nodeName ?? '<none>') ?? []), `${e.addresses[0]} ${e.targetRef?.name ?? ''}${state}`]);
  }
  out.push('Endpoints by node:\n' + indent(byNode.size ? [...byNode].map(([n, eps]) => `${n}: ${eps.join(', ')}`).join('\n') : '<none>'));
  const node = plan?.nodes[0];
  const nodeNs = node && dp.at(netnsPath(node.netns));
  if (node && nodeNs && dp.netnsState(nodeNs.path!) === 'ok' && s.clusterIP && s.clusterIP !== 'None') {
    const carried = await serviceCarriers(nodeNs, plan?.spec.proxyMode ?? 'iptables', svc, plan?.spec.iptablesBackend);
    out.push(`${carriersHeading(carried, node.name)}:\n` + indent(carried.lines.join('\n') || '<none>'));
  }
  return out.join('\n');
}

/** `describe ingress`, as kubectl prints it: rules with each backend's endpoints (or the error), TLS, annotations. */
export function describeIngress(ing: Ingress, services: Service[], slices: EndpointSlice[]): string {
  const backend = (b: IngressBackend | undefined) => {
    if (!b?.service) return b?.resource ? `APIGroup: ${b.resource.apiGroup ?? ''}, Kind: ${b.resource.kind}, Name: ${b.resource.name}` : '<default>';
    const up = upstreamOf(ing, b, services, slices);
    const port = b.service.port.name ?? b.service.port.number;
    const eps = typeof up === 'string' ? `<error: ${up}>` : up.endpoints.length ? `(${up.endpoints.join(',')})` : '(<none>)';
    return `${b.service.name}:${port} ${eps}`;
  };
  const rules: string[][] = [['Host', 'Path', 'Backends'], ['----', '----', '--------']];
  for (const r of ing.spec.rules ?? []) {
    rules.push([r.host || '*', '', '']);
    for (const p of r.http?.paths ?? []) rules.push(['', `${p.path ?? '/'} (${p.pathType})`, backend(p.backend)]);
  }
  const tls = (ing.spec.tls ?? []).map((t) => `${t.secretName || 'SNI routes'} terminates ${(t.hosts ?? []).join(',')}`);
  const annotations = Object.entries(ing.metadata.annotations ?? {}).filter(([k]) => k !== 'kubectl.kubernetes.io/last-applied-configuration');
  return [
    fields([
      ['Name', ing.metadata.name],
      ['Labels', labels(ing.metadata.labels)],
      ['Namespace', ing.metadata.namespace],
      ['Address', (ing.status?.loadBalancer?.ingress ?? []).map((a) => a.ip ?? a.hostname).join(',')],
      ['Ingress Class', ing.spec.ingressClassName ?? '<none>'],
      ['Default backend', backend(ing.spec.defaultBackend)],
    ]),
    ...(tls.length ? [`TLS:\n${indent(tls.join('\n'))}`] : []),
    `Rules:\n${indent(table(rules))}`,
    fields([['Annotations', annotations.map(([k, v]) => `${k}: ${v}`).join('\n') || '<none>']]),
  ].join('\n');
}

/** The Events section every describe ends with, newest last, as kubectl prints it. */
export function eventsSection(events: Event[]): string {
  if (!events.length) return 'Events:  <none>';
  const sorted = [...events].sort((a, b) => a.lastTimestamp.localeCompare(b.lastTimestamp));
  const rows = sorted.map((e) => [e.type, e.reason, e.count > 1 ? `${age(e.lastTimestamp)} (x${e.count} over ${age(e.firstTimestamp)})` : age(e.lastTimestamp), e.source.component, e.message]);
  return `Events:\n${indent(table([['Type', 'Reason', 'Age', 'From', 'Message'], ['----', '------', '----', '----', '-------'], ...rows]))}`;
}

/**
 * vpc mode: the node's pool of VPC addresses as its ipamd holds it (each in use by a pod or
 * warm), whether the VPC's table leads each one to this node, and the pods' pairs with the
 * host routes to them.
 */
async function vpcSection(dp: Dataplane, plan: ClusterPlan, np: NodePlan, snap: Addressing, attachments: PodRecordBase[]): Promise<string[]> {
  const checkpoint = ipamdCheckpoint(nodeFiles(clusterDir(plan.spec.name), np));
  const pool = (existsSync(checkpoint) ? JSON.parse(readFileSync(checkpoint, 'utf8')) : {}) as Record<string, { containerID: string } | null>;
  const fabric = await dp.at(netnsPath(plan.networkNetns)).neighbours(UNDERLAY.bridge).catch(() => []);
  const mac = nodeMAC(plan, np);
  const check = await sourceCheckOf(dp, plan, np);
  const rows = Object.entries(pool).map(([ip, holder]) => {
    const a = attachments.find((x) => x.ip === ip);
    const vpc = fabric.find((n) => n.dst === ip);
    return [ip, holder ? (a ? `pod ${a.namespace}/${a.name}` : `in use (${holder.containerID.slice(0, 12)})`) : 'warm', vpc?.lladdr === mac ? `→ ${mac} (this node's eth0)` : vpc ? `→ ${vpc.lladdr ?? '?'} (not this node!)` : 'unknown to the VPC', !check ? 'off' : check.allowed.has(ip) ? 'allowed' : 'dropped!'];
  });
  const used = Object.values(pool).filter(Boolean).length;
  const warm = plan.spec.warmIPTarget ?? VPC.warmIPTarget;
  const minimum = plan.spec.minimumIPTarget ?? VPC.minimumIPTarget;
  const pairs = snap.links.filter((l) => l.linkinfo?.info_kind === 'veth' && l.ifname !== 'eth0');
  return [
    `VPC addresses (this node's pool, as the AWS VPC CNI's ipamd keeps it: ${used} in use, ${Object.keys(pool).length - used} warm; WARM_IP_TARGET ${warm}, MINIMUM_IP_TARGET ${minimum}):\n` +
      indent(rows.length ? table([['ADDRESS', 'USE', "THE VPC'S TABLE", 'AS A SOURCE'], ...rows]) : '<none>'),
    check
      ? `Source check (the VPC's, as EC2's on an ENI: port ${np.underlayPort} lets out frames from ${mac} only, with a source among the ${check.allowed.size} addresses assigned to this node, ${np.ip} and its pool): ` +
        `dropped ${check.ip} with another source address (counter ${checkNames(np.underlayPort).ip}), ${check.mac} with another MAC (counter ${checkNames(np.underlayPort).mac})`
      : `Source check: off (no table bridge ${SOURCE_CHECK.table} in the network namespace: frames of any source cross the VPC)`,
    `Pod pairs (ptp: host end ${VPC.podGateway}/32, a /32 host route to the pod):\n` +
      indent(pairs.length ? table([['HOST END', 'MAC', 'POD', 'ROUTE'], ...pairs.map((p) => {
        const a = attachments.find((x) => x.hostVeth === p.ifname);
        const route = snap.routes.find((r) => r.dev === p.ifname && r.dst !== VPC.podGateway);
        return [p.ifname, p.address ?? '', a ? `${a.namespace}/${a.name} ${a.ip}` : '', route ? formatRoute(route) : 'none'];
      })]) : '<none>'),
    `SNAT: ${plan.spec.externalSNAT ? "none (--external-snat: pod traffic leaves the VPC with the pod's address)" : `pod traffic leaving the VPC ${UNDERLAY.subnet} takes ${np.ip} (KUBEWIRE-POSTROUTING)`}`,
  ];
}

/** The VPC's source check of a node's port, as the fabric holds it: the addresses it lets out and what its counters dropped; undefined when it is off. */
async function sourceCheckOf(dp: Dataplane, plan: ClusterPlan, np: NodePlan): Promise<{ allowed: Set<string>; ip: number; mac: number } | undefined> {
  const table = await dp.at(netnsPath(plan.networkNetns)).nftTableState(SOURCE_CHECK.table, 'bridge').catch(() => undefined);
  if (!table) return undefined;
  const names = checkNames(np.underlayPort);
  const packets = (name: string) => table.counters.find((c) => c.name === name)?.packets ?? 0;
  return { allowed: new Set(table.sets.find((x) => x.name === names.set)?.elements ?? []), ip: packets(names.ip), mac: packets(names.mac) };
}
