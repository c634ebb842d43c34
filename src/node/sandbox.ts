// Pod sandboxes on one node, as the kubelet and its container runtime make them: a network
// namespace per pod, then CNI for lo and for eth0 (the node's network, its first conflist),
// through kubewire's runtime library with the plugins in-process and the node's namespace
// as their host. Teardown is the reverse. After a crash, gc() removes the sandboxes (and
// through CNI GC, the IPs and rules) of pods that are no longer wanted.

import { loadDefaultConfList, parseConfList, type NetworkConfigList } from '../cni/runtime/conflist.ts';
import { CniRuntime } from '../cni/runtime/runtime.ts';
import type { Attachment } from '../cni/spec/types.ts';
import type { Dataplane } from '../dataplane/port.ts';
import { podNetnsName, podNetnsPrefix, type NodePlan } from '../cluster/plan.ts';
import type { NodeFiles } from '../cluster/topology.ts';

export interface PodRef {
  uid: string;
  namespace: string;
  name: string;
}

export interface Sandbox {
  pod: PodRef;
  netns: string; // path
  ip: string;
  mac?: string;
  hostVeth?: string;
}

/** What an agent asks of its node's sandboxes: SandboxManager here, or the daemon's thread that runs them (daemon/sandbox-worker.ts). */
export type Sandboxes = Pick<SandboxManager, 'netnsName' | 'create' | 'remove' | 'gc' | 'namespaces'>;

/** What containerd's go-cni uses for lo: a fixed loopback network. */
const LOOPBACK = parseConfList(Buffer.from(JSON.stringify({ cniVersion: '1.1.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }] })), 'loopback network');

export class SandboxManager {
  private readonly runtime: CniRuntime;
  private readonly prefix: string;

  constructor(
    private readonly cluster: string,
    private readonly node: NodePlan,
    private readonly files: NodeFiles,
    private readonly dataplane: Dataplane,
  ) {
    this.runtime = new CniRuntime({ path: [files.binDir], cacheDir: files.cacheDir, hostNetns: dataplane.netnsPath(node.netns), inProcess: true, dataplane });
    this.prefix = podNetnsPrefix(cluster, node.name);
  }

  /** The pod's namespace name (plan.ts decides it). */
  netnsName(pod: PodRef): string {
    return podNetnsName(this.cluster, this.node.name, pod);
  }

  private network(): NetworkConfigList {
    return loadDefaultConfList(this.files.confDir);
  }

  private cniArgs(pod: PodRef): Array<[string, string]> {
    return [['IgnoreUnknown', '1'], ['K8S_POD_NAMESPACE', pod.namespace], ['K8S_POD_NAME', pod.name], ['K8S_POD_UID', pod.uid], ['K8S_POD_INFRA_CONTAINER_ID', pod.uid]];
  }

  /** Creates the pod's namespace and wires lo and eth0; on failure nothing is left. */
  async create(pod: PodRef, portMappings: unknown[] = []): Promise<Sandbox> {
    const name = this.netnsName(pod);
    const netns = this.dataplane.netnsPath(name);
    const network = this.network();
    // A namespace by this name without a record of it is what a crash mid-setup leaves:
    // undo it (CNI DEL for this pod, then the namespace) and start clean.
    if (this.dataplane.netnsState(netns) !== 'missing') await this.remove(pod);
    await this.dataplane.createNetns(name);
    try {
      const args = this.cniArgs(pod);
      // Like containerd: lo and eth0 at once.
      const [, result] = await Promise.all([
        this.runtime.addNetworkList(LOOPBACK, { containerID: pod.uid, netns, ifName: 'lo', args }),
        this.runtime.addNetworkList(network, { containerID: pod.uid, netns, ifName: 'eth0', args, capabilityArgs: { portMappings } }),
      ]);
      const eth0 = result.interfaces?.find((i) => i.sandbox && i.name === 'eth0');
      return { pod, netns, ip: result.ips![0]!.address.split('/')[0]!, mac: eth0?.mac, hostVeth: result.interfaces?.find((i) => !i.sandbox && i.name.startsWith('veth'))?.name };
    } catch (e) {
      await this.remove(pod).catch(() => undefined);
      throw e;
    }
  }

  /** CNI DEL for eth0 and lo (from the cached results), then the namespace. Idempotent. */
  async remove(pod: PodRef): Promise<void> {
    const name = this.netnsName(pod);
    const netns = this.dataplane.netnsPath(name);
    const args = this.cniArgs(pod);
    await this.runtime.delNetworkList(this.network(), { containerID: pod.uid, netns, ifName: 'eth0', args });
    await this.runtime.delNetworkList(LOOPBACK, { containerID: pod.uid, netns, ifName: 'lo', args });
    // Its containers were stopped by the agent; absent: already removed.
    await this.dataplane.deleteNetns(name, { leaveProcesses: true });
  }

  /** The pods' namespaces that exist on this node. */
  namespaces(): Promise<string[]> {
    return this.dataplane.listNetns(this.prefix);
  }

  /**
   * Converges on `wanted`: sandboxes of other pods are torn down (CNI DEL from the cache,
   * then the namespace), and CNI GC releases whatever else is held for attachments that
   * are not wanted — IPs, veths, rules left by a crash in the middle of an ADD.
   */
  async gc(wanted: PodRef[]): Promise<string[]> {
    const keep = new Set(wanted.map((p) => this.netnsName(p)));
    const valid: Attachment[] = wanted.map((p) => ({ containerID: p.uid, ifname: 'eth0' }));
    const removed: string[] = [];
    const errors: string[] = [];
    // Keep going past errors (the spec asks the same of GC), and report them at the end.
    await this.runtime.gcNetworkList(this.network(), valid).catch((e: Error) => errors.push(e.message));
    await this.runtime.gcNetworkList(LOOPBACK, wanted.map((p) => ({ containerID: p.uid, ifname: 'lo' }))).catch((e: Error) => errors.push(e.message));
    for (const name of await this.namespaces()) {
      if (keep.has(name)) continue;
      await this.dataplane.deleteNetns(name).then(() => removed.push(name), (e: Error) => errors.push(e.message));
    }
    if (errors.length) throw new Error(`sandbox GC on ${this.node.name} incomplete: ${errors.join('; ')}`);
    return removed;
  }
}
