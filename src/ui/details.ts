// What a click on the page shows: an element as `kubectl describe` and the kernel see it
// (addresses, routes, ARP and FDB entries, the rules or map elements that carry a Service --
// the proxy's own answer, as `describe service` prints it -- endpoints, events), read when asked.

import { RESOURCES } from '../api/resources.ts';
import type { EndpointSlice, Event, Ingress, Pod, Service } from '../api/types.ts';
import { podNetnsName } from '../cluster/plan.ts';
import type { ObjectClient } from '../apiserver/objects.ts';
import type { ClusterPlan } from '../cluster/plan.ts';
import { netnsPath, type Dataplane, type Netns } from '../dataplane/port.ts';
import { carriersHeading, serviceCarriers } from '../proxy/carry.ts';
import type { GraphElement } from './topology.ts';

/** What details are read through: the cluster's plan, its API, the kernel. */
export interface Sources {
  client: ObjectClient;
  plan: ClusterPlan;
  dp: Dataplane;
}

export interface Objects {
  pods: Pod[];
  services: Service[];
  slices: EndpointSlice[];
  ingresses: Ingress[];
}

async function kernelView(ns: Netns, what: { bridge?: string }): Promise<string[]> {
  const [links, routes, neighbours] = await Promise.all([ns.links(), ns.routes(), ns.neighbours()]);
  const out = ['Addresses:'];
  for (const l of links) {
    const addrs = (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    out.push(`  ${l.ifname}${l.master ? ` (port of ${l.master})` : ''}  ${l.address ?? ''}  ${addrs.join(' ')}  ${l.operstate}`);
  }
  out.push('Routes:', ...routes.filter((r) => !r.dst.includes(':')).map((r) => `  ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${r.scope ? ` scope ${r.scope}` : ''}`));
  out.push('ARP (neighbours):', ...neighbours.filter((n) => !n.dst.includes(':')).map((n) => `  ${n.dst} dev ${n.dev} ${n.lladdr ?? ''} ${(n.state ?? []).join(',')}`));
  if (what.bridge) {
    const fdb = (await ns.fdb(what.bridge)).filter((f) => f.master === what.bridge || f.ifname !== what.bridge);
    out.push(`FDB of ${what.bridge} (MAC → port):`, ...fdb.map((f) => `  ${f.mac} → ${f.ifname}${f.flags?.includes('permanent') || f.state === 'permanent' ? ' permanent' : ''}`));
  }
  return out;
}

/** The kernel's view, or one line saying why it cannot be read now (a namespace removed behind the cluster's back): a click never fails. */
function readable(view: Promise<string[]>, netns: string): Promise<string[]> {
  return view.catch((e: Error) => [`(the kernel's view of ${netns} cannot be read: ${e.message.split('\n')[0]})`]);
}

async function eventsOf(o: Sources, uid: string | undefined, namespace: string | undefined): Promise<string[]> {
  if (!uid || !namespace) return [];
  const events = (await o.client.list<Event>(RESOURCES.find((r) => r.kind === 'Event')!, namespace, { fieldSelector: `involvedObject.uid=${uid}` })).items;
  return ['Events:', ...(events.length ? events.slice(-10).map((e) => `  ${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`) : ['  <none>'])];
}

export async function details(o: Sources, e: GraphElement, objects: Objects): Promise<string[]> {
  const { plan, dp } = o;
  const d = e.data;
  const head = [`${d.kind} ${d.label?.replace(/\n/g, ' ') ?? d.id}`, ...(d.facts ?? [])];
  if (d.kind === 'segment' || d.kind === 'router') return [...head, ...(await readable(kernelView(dp.at(netnsPath(plan.networkNetns)), { bridge: 'underlay' }), plan.networkNetns))];
  if (d.kind === 'external') return [...head, ...(await readable(kernelView(dp.at(netnsPath(plan.externalNetns)), {}), plan.externalNetns))];
  if (d.kind === 'node' || d.kind === 'eth0' || d.kind === 'bridge') {
    const name = d.id.slice(d.id.indexOf('/') + 1);
    const node = plan.nodes.find((n) => n.name === name);
    if (!node) return head;
    return [...head, `Node ${name}: eth0 ${node.ip}, ${node.podCIDR ? `cni0 ${node.bridgeIP}, podCIDR ${node.podCIDR}` : "pods on ptp pairs with VPC addresses"}, namespace ${node.netns}`, ...(await readable(kernelView(dp.at(netnsPath(node.netns)), node.podCIDR ? { bridge: 'cni0' } : {}), node.netns))];
  }
  if (d.kind === 'pod') {
    const pod = objects.pods.find((p) => `pod/${p.metadata.namespace}/${p.metadata.name}` === d.id);
    if (!pod) return head;
    const lines = [...head, `Namespace: ${pod.metadata.namespace}`, `Node: ${pod.spec.nodeName ?? '<none>'}`, `IP: ${pod.status?.podIP ?? '<none>'}`, `Labels: ${Object.entries(pod.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '<none>'}`, `Containers: ${pod.spec.containers.map((c) => `${c.name} (${c.image}${c.ports?.length ? `, ports ${c.ports.map((p) => p.containerPort).join(',')}` : ''})`).join('; ')}`];
    if (pod.spec.nodeName && pod.status?.phase === 'Running') {
      lines.push(...(await kernelView(dp.at(netnsPath(podNetnsName(plan.spec.name, pod.spec.nodeName, { namespace: pod.metadata.namespace!, name: pod.metadata.name }))), {}).catch(() => ['(the pod namespace is gone)'])));
    }
    return [...lines, ...(await eventsOf(o, pod.metadata.uid, pod.metadata.namespace))];
  }
  if (d.kind === 'service') {
    const svc = objects.services.find((s) => `svc/${s.metadata.namespace}/${s.metadata.name}` === d.id);
    if (!svc) return head;
    const endpoints = objects.slices.filter((s) => s.metadata.namespace === svc.metadata.namespace && s.metadata.labels?.['kubernetes.io/service-name'] === svc.metadata.name).flatMap((s) => s.endpoints.map((ep) => `  ${ep.addresses.join(',')}${ep.targetRef ? ` (pod ${ep.targetRef.name})` : ''} on ${ep.nodeName ?? '?'} ${ep.conditions.ready === false ? 'not ready' : 'ready'}`));
    const lines = [...head, `ClusterIP: ${svc.spec.clusterIP ?? '<none>'}`, `Selector: ${Object.entries(svc.spec.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '<none>'}`, 'Endpoints:', ...(endpoints.length ? endpoints : ['  <none>'])];
    const first = plan.nodes[0];
    if (first && svc.spec.clusterIP && svc.spec.clusterIP !== 'None') {
      // The same answer `kubewire describe service` prints (src/proxy/carry.ts), the first 40 lines of it.
      const carried = await serviceCarriers(dp.at(netnsPath(first.netns)), plan.spec.proxyMode ?? 'iptables', svc, plan.spec.iptablesBackend);
      const rules = carried.lines;
      lines.push(`${carriersHeading(carried, first.name)}:`, ...rules.slice(0, 40).map((r) => `  ${r}`), ...(rules.length > 40 ? [`  ... ${rules.length - 40} more`] : []));
    }
    return [...lines, ...(await eventsOf(o, svc.metadata.uid, svc.metadata.namespace))];
  }
  if (d.kind === 'ingress') {
    const ing = objects.ingresses.find((i) => `ing/${i.metadata.namespace}/${i.metadata.name}` === d.id);
    return [...head, `Class: ${ing?.spec.ingressClassName ?? '<default>'}`, `TLS: ${(ing?.spec.tls ?? []).map((t) => `${(t.hosts ?? []).join(',')} (${t.secretName})`).join('; ') || '<none>'}`, ...(await eventsOf(o, ing?.metadata.uid, ing?.metadata.namespace))];
  }
  return head;
}
