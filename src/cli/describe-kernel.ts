// `describe pod` of a cluster in a kernel of its own, run on the host as the API verbs are:
// the pod and its events through the relayed API, its view of names read by the guest agent,
// its network from the guest's own tools (ip, bridge) started by the guest agent in the pod's
// and the node's namespaces. No kubewire process starts in there: a Node start costs over a
// second in that kernel, and the process the guest keeps loaded is then reloaded, holding the
// kernel up for the next command.

import { join } from 'node:path';
import type { Node, Pod } from '../api/types.ts';
import type { Dataplane } from '../dataplane/port.ts';
import { podNetnsName, type ClusterPlan } from '../cluster/plan.ts';
import { CommandError, runToolsThrough } from '../dataplane/linux/exec.ts';
import { linux } from '../dataplane/linux/host.ts';
import { netnsPath } from '../dataplane/port.ts';
import { captureInKernel, GUEST_STATE_DIR, readInKernel } from '../kernel/client.ts';
import { podRecordDir, type PodRecordBase } from '../node/records.ts';
import { describeNode, describePod, type PodViewFiles } from './describe.ts';

/** `kubewire describe pod` for a pod of `cluster`, whose kernel is its own. */
export async function describePodInKernel(cluster: string, plan: ClusterPlan, pod: Pod): Promise<string> {
  const node = plan.nodes.find((n) => n.name === pod.spec.nodeName);
  const ref = { namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name, uid: pod.metadata.uid ?? '' };
  // The guest's paths: its state directory is its own tmpfs.
  const etc = node && ref.uid ? join(podRecordDir(join(GUEST_STATE_DIR, cluster, 'nodes', node.name, 'pods'), ref), 'etc') : undefined;
  let view: PodViewFiles | undefined;
  if (etc) {
    const files = await readInKernel(cluster, [join(etc, 'resolv.conf'), join(etc, 'hostname')]);
    const [resolv, hostname] = [files[join(etc, 'resolv.conf')], files[join(etc, 'hostname')]];
    if (typeof resolv === 'string' && typeof hostname === 'string') view = { resolv, hostname };
  }
  // A pod whose sandbox has its files has its namespace (its node agent writes them once it is made).
  const netns = node && view ? netnsPath(podNetnsName(cluster, node.name, ref)) : undefined;
  return withGuestTools(cluster, () => describePod(linux, pod, plan, netns, view));
}

/**
 * `kubewire describe node` for a node of `cluster`, whose kernel is its own: the node and its
 * pods through the relayed API, its pods' records (which veth is whose) read by the guest agent,
 * its network from the guest's own tools in the node's namespace; no kubewire process in there.
 */
export async function describeNodeInKernel(cluster: string, plan: ClusterPlan, node: Node, pods: Pod[]): Promise<string> {
  const podsDir = join(GUEST_STATE_DIR, cluster, 'nodes', node.metadata.name, 'pods');
  const records = pods.filter((p) => p.metadata.uid).map((p) => join(podRecordDir(podsDir, { namespace: p.metadata.namespace ?? 'default', name: p.metadata.name, uid: p.metadata.uid! }), 'pod.json'));
  const files = records.length ? await readInKernel(cluster, records) : {};
  const attachments = Object.values(files).flatMap((text) => (typeof text === 'string' ? [JSON.parse(text) as PodRecordBase] : []));
  // The namespace is the guest's (its /run): this machine cannot look at it, the guest's tools say when it is gone.
  const guestDataplane = new Proxy(linux, { get: (target, key) => (key === 'netnsState' ? () => 'present' : Reflect.get(target, key)) }) as Dataplane;
  return withGuestTools(cluster, () => describeNode(guestDataplane, node, pods, plan, attachments));
}

/** Runs `f` with the dataplane's tools started by the guest agent of `cluster`'s kernel. */
async function withGuestTools<T>(cluster: string, f: () => Promise<T>): Promise<T> {
  runToolsThrough(async (argv, opts) => {
    const r = await captureInKernel(cluster, { argv, env: {}, ...(opts.netns ? { netns: opts.netns, missing: `${opts.netns}: No such file or directory` } : {}) }, opts.input);
    if (r.code !== 0) throw new CommandError(argv, r.code, r.stderr.replace(/^error: /, ''), r.stdout);
    return r.stdout;
  });
  try {
    return await f();
  } finally {
    runToolsThrough(undefined);
  }
}
