// `describe pod` of a cluster in a kernel of its own, run on the host as the API verbs are:
// the pod and its events through the relayed API, its view of names read by the guest agent,
// its network from the guest's own tools (ip, bridge) started by the guest agent in the pod's
// and the node's namespaces. No kubewire process starts in there: a Node start costs over a
// second in that kernel, and the process the guest keeps loaded is then reloaded, holding the
// kernel up for the next command.

import { join } from 'node:path';
import type { Pod } from '../api/types.ts';
import { podNetnsName, type ClusterPlan } from '../cluster/plan.ts';
import { CommandError, runToolsThrough } from '../dataplane/linux/exec.ts';
import { linux } from '../dataplane/linux/host.ts';
import { netnsPath } from '../dataplane/port.ts';
import { captureInKernel, GUEST_STATE_DIR, readInKernel } from '../kernel/client.ts';
import { podRecordDir } from '../node/records.ts';
import { describePod, type PodViewFiles } from './describe.ts';

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
  runToolsThrough(async (argv, opts) => {
    const r = await captureInKernel(cluster, { argv, env: {}, ...(opts.netns ? { netns: opts.netns, missing: `${opts.netns}: No such file or directory` } : {}) }, opts.input);
    if (r.code !== 0) throw new CommandError(argv, r.code, r.stderr.replace(/^error: /, ''), r.stdout);
    return r.stdout;
  });
  try {
    return await describePod(linux, pod, plan, netns, view);
  } finally {
    runToolsThrough(undefined);
  }
}
