// The cluster daemon: the control plane (store, API server, controllers) and the node
// agents of one cluster, in one process started by `kubewire up`. Pods' processes and the
// nodes' workload hosts run apart from it and outlive it; a restarted daemon adopts them.

import { appendFileSync, existsSync, mkdirSync, writeFileSync, rmSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MAX_PODS, type KubeObject } from '../api/types.ts';
import { Api } from '../apiserver/api.ts';
import { createIfMissing, LocalClient } from '../apiserver/objects.ts';
import { Informer } from '../apiserver/informer.ts';
import { resourceOfKind } from '../api/resources.ts';
import { ApiServer } from '../apiserver/server.ts';
import { listenClusterHttps, type HttpsListener } from '../apiserver/https.ts';
import { Store } from '../apiserver/store.ts';
import { loadCluster } from '../cluster/cluster.ts';
import { podRange, VPC, type ClusterPlan } from '../cluster/plan.ts';
import { clusterDir, daemonPaths } from '../state/paths.ts';
import { cniServerSocket, ipamdCheckpoint, ipamdSocket, nodeFiles } from '../cluster/topology.ts';
import { CniServer } from '../cni/server/server.ts';
import { ControllerManager } from '../controllers/manager.ts';
import { linux } from '../dataplane/linux/host.ts';
import { NodeAgent } from '../node/agent.ts';
import { PeerSync } from '../node/peers.ts';
import { DEFAULT_CLASS_ANNOTATION } from '../apiserver/admission.ts';
import { ensureClusterDns } from './cluster-dns.ts';
import { ensureNodeComponents, externalComponents } from './components.ts';
import { CONTROLLER_NAME, DEFAULT_CLASS } from '../ingress/classes.ts';
import { ensureIngressControllers, ingressControllerPids } from '../ingress/supervisor.ts';
import { IptablesBackend } from '../proxy/iptables/backend.ts';
import { IpvsBackend } from '../proxy/ipvs/backend.ts';
import { NftablesBackend } from '../proxy/nftables/backend.ts';
import { Proxier } from '../proxy/proxier.ts';
import { nodePolicy } from '../netpol/node.ts';
import type { PolicyEnforcer } from '../netpol/enforcer.ts';
import { nodeHostPaths, WorkloadHostClient } from '../workloads/client.ts';
import { livePid } from '../state/pidfile.ts';
import { stopProcess } from '../supervisor/supervisor.ts';
import { Ipamd } from '../vpc/ipamd.ts';
import { Vpc } from '../vpc/vpc.ts';
import { PodStreams } from './streams.ts';
import { SandboxWorker } from './sandbox-worker.ts';
import { serveApiInNodes } from './node-api.ts';
import { ensureKubernetesService } from './kubernetes-service.ts';
import { readEndpoint } from '../identity/endpoint.ts';
import { reclaimAfterBursts } from './memory.ts';
import { reportLoopStats } from './loop-stats.ts';

export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

export class Daemon {
  readonly api: Api;
  /** The in-process client every component of the daemon reads and writes through (its informers share the store's frozen objects). */
  readonly client: LocalClient;
  readonly agents: NodeAgent[] = [];
  readonly proxies: Proxier[] = [];
  /** Each node's NetworkPolicy enforcer (its own nftables table, or iptables + ipset). */
  readonly policies: PolicyEnforcer[] = [];
  /** vpc mode: the VPC that gives nodes addresses, and each node's ipamd that hands them to pods. */
  readonly vpc?: Vpc;
  readonly ipamds: Ipamd[] = [];
  /** host-gw and vxlan: each node's routes to the others' pods; routed: the router's; all following the Node objects. */
  readonly peers: PeerSync[] = [];
  private readonly server: ApiServer;
  /** The same API on https://127.0.0.1:PORT with client certificates (kubectl's way in). */
  private https?: HttpsListener;
  private readonly controllers: ControllerManager;
  private readonly store: Store;
  /** Each node's workload host, started when its first built-in workload needs it. */
  private readonly hosts: WorkloadHostClient[] = [];
  private watchdog?: NodeJS.Timeout;
  /** Serves the nodes' installed CNI shims (a runtime executing bridge, host-local... in a node's namespace). */
  private readonly cniServer: CniServer;

  private readonly plan: ClusterPlan;
  /** Every node's pod sandboxes (namespaces, CNI), made on a thread of their own: off the API's event loop. */
  private readonly sandboxes: SandboxWorker;
  /** The API on each node's 127.0.0.1 (node-api.ts). */
  private closeNodeApi?: () => Promise<void>;

  constructor(readonly cluster: string, private readonly log: (line: string) => void = (l) => process.stderr.write(`${new Date().toISOString()} ${l}\n`)) {
    const plan = (this.plan = loadCluster(cluster));
    const paths = daemonPaths(cluster);
    this.store = new Store(paths.store);
    const maxPods = plan.spec.maxPods ?? DEFAULT_MAX_PODS;
    const podLimit = { pods: maxPods * plan.nodes.length, why: `${maxPods} per node × ${plan.nodes.length} node${plan.nodes.length === 1 ? '' : 's'}; kubewire up --max-pods` };
    this.api = new Api(this.store, { serviceCIDR: plan.spec.serviceCIDR, podLimit });
    this.client = new LocalClient(this.api, { shareObjects: true });
    // The node side of logs, exec, attach and port-forward (the kubelet's part), for every node's pods.
    const streams = new PodStreams(this.api, this.agents);
    this.server = new ApiServer(this.api, { podLog: (r) => streams.log(r), exec: (r) => streams.exec(r), attach: (r) => streams.attach(r), portForward: (r) => streams.portForward(r) });
    // vpc mode: pods take VPC addresses, so node IPAM cuts no podCIDRs (--allocate-node-cidrs=false).
    this.controllers = new ControllerManager(this.client, { clusterCIDR: plan.spec.mode === 'vpc' ? undefined : plan.spec.podCIDR, nodeCIDRMask: plan.spec.nodeCIDRMask, log });
    // routed mode: the router's route per node podCIDR follows the Node objects, as a cloud
    // route table follows kube-controller-manager's route controller.
    if (plan.spec.mode === 'routed') this.peers.push(new PeerSync({ client: this.client, self: 'router', mode: 'host-gw', podRange: plan.spec.podCIDR, netns: linux.at(linux.netnsPath(plan.networkNetns)), log }));
    this.cniServer = new CniServer({ socket: cniServerSocket(paths.dir), dataplane: linux, log });
    this.sandboxes = new SandboxWorker({ cluster, nodes: plan.nodes.map((node) => ({ node, files: nodeFiles(paths.dir, node) })) }, log);
    // In a kernel of its own (user-mode Linux: one CPU, every page fault through the host) a second
    // isolate loading the bundle costs more than it spares; there the agents make sandboxes in-process
    // (with the thread, the first pod's `kubewire wait` ended in 'socket hang up' in api-streams' UML suite).
    const offLoop = process.env.KUBEWIRE_GUEST !== '1';
    const vpc = plan.spec.mode === 'vpc' ? (this.vpc = new Vpc(plan, linux.at(linux.netnsPath(plan.networkNetns)), join(paths.dir, 'vpc.json'), log)) : undefined;
    for (const node of plan.nodes) {
      const files = nodeFiles(paths.dir, node);
      if (vpc) {
        const targets = { warmIPTarget: plan.spec.warmIPTarget ?? VPC.warmIPTarget, minimumIPTarget: plan.spec.minimumIPTarget ?? VPC.minimumIPTarget, maxIPs: maxPods };
        this.ipamds.push(new Ipamd({ node, socketPath: ipamdSocket(files), checkpointPath: ipamdCheckpoint(files), vpc, targets, cooldownSeconds: plan.spec.ipCooldownSeconds ?? VPC.ipCooldownSeconds, log }));
      }
      // A host's death is its node's built-in containers dying: the agent reports them and starts them again.
      const host = new WorkloadHostClient({ cluster, ...nodeHostPaths(paths.dir, node.name), lost: () => agent.workloadHostLost() });
      const policy = nodePolicy({ api: this.api, nodeName: node.name, netns: linux.at(linux.netnsPath(node.netns)), spec: plan.spec, log });
      this.policies.push(policy);
      const agent = new NodeAgent({ api: this.api, plan, node, files, stateDir: join(paths.dir, 'nodes', node.name), host, dataplane: linux, log, podStarting: (pod, ip) => policy.podStarting(pod, ip), sandboxes: offLoop ? this.sandboxes.forNode(node) : undefined });
      this.hosts.push(host);
      this.agents.push(agent);
      const netns = linux.at(linux.netnsPath(node.netns));
      if (plan.spec.mode === 'host-gw' || plan.spec.mode === 'vxlan') this.peers.push(new PeerSync({ client: this.client, self: node.name, mode: plan.spec.mode, podRange: plan.spec.podCIDR, netns, log }));
      const cfg = { clusterCIDR: podRange(plan), nodePodCIDR: node.podCIDR };
      const mode = plan.spec.proxyMode ?? 'iptables';
      const backend = mode === 'nftables' ? new NftablesBackend(netns, cfg) : mode === 'ipvs' ? new IpvsBackend(netns, { ...cfg, nodeIPs: [node.ip], ...(plan.spec.ipvsScheduler ? { scheduler: plan.spec.ipvsScheduler } : {}), ...(plan.spec.ipvsStrictARP ? { strictARP: true } : {}) }, plan.spec.iptablesBackend) : new IptablesBackend(netns, cfg, plan.spec.iptablesBackend);
      if (!plan.spec.externalProxy?.includes(node.name) && !externalComponents(plan.spec)) this.proxies.push(new Proxier({ client: this.client, nodeName: node.name, netns, backend, log, metricsBindAddress: plan.spec.metricsBindAddress }));
    }
  }

  /** Tells `kubewire up` what the daemon is doing while it starts (a large store takes a while). */
  private progress(phase: string): void {
    appendFileSync(daemonPaths(this.cluster).progress, `${JSON.stringify({ pid: process.pid, phase, at: Date.now() })}\n`, { mode: 0o600 });
    this.log(phase);
  }

  async start(): Promise<void> {
    const paths = daemonPaths(this.cluster);
    const size = existsSync(paths.store) ? statSync(paths.store).size : 0;
    this.progress(`store opened: ${this.store.countObjects().toLocaleString('en')} objects, ${(size / 1e6).toFixed(1)} MB`);
    for (const name of SYSTEM_NAMESPACES) await createIfMissing(this.client, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    await ensureKubernetesService(this.client, this.plan.spec, this.plan.nodes.map((n) => n.ip), this.log);
    await ensureClusterDns(this.client, this.plan.spec);
    await this.retireClusterHost();
    // Fault injection for the tests of `up`: a daemon that hangs while starting.
    if (process.env.KUBEWIRE_FAULT_DAEMON_HANG) await new Promise(() => setInterval(() => undefined, 60_000));
    if (this.vpc) {
      this.progress('vpc: the fabric, and each node\'s ipamd filling its warm pool');
      await this.vpc.start();
      await Promise.all(this.ipamds.map((d) => d.start()));
    }
    this.progress('starting the controllers');
    await this.controllers.start();
    // Agents register their nodes; node IPAM gives them podCIDRs; then pods flow.
    await Promise.all(this.policies.map((p) => p.start()));
    this.progress('node agents: registering nodes, adopting pods');
    let adopted = 0;
    await Promise.all(this.agents.map((a) => a.start().then(() => this.progress(`node agents: ${++adopted} of ${this.agents.length} started (${a.nodeName})`))));
    if (this.peers.length) {
      this.progress(`peer routes (${this.plan.spec.mode}): from the Node objects`);
      await Promise.all(this.peers.map((p) => p.start()));
    }
    this.progress('service proxies: first sync');
    await Promise.all(this.proxies.map((p) => p.start()));
    await createIfMissing(this.client, { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: DEFAULT_CLASS, annotations: { [DEFAULT_CLASS_ANNOTATION]: 'true' } }, spec: { controller: CONTROLLER_NAME } } as KubeObject);
    this.progress('API server listening; waiting for the nodes to be Ready');
    await this.server.listen(paths.socket);
    // Without it the shims run the plugins themselves (a Node.js start per call): worth a line, not a failed start.
    await this.cniServer.listen().catch((e: Error) => this.log(`CNI plugin server: ${e.message}`));
    this.https = await listenClusterHttps(this.server, paths.dir, process.env.KUBEWIRE_GUEST === '1', (l) => this.log(l));
    // In a kernel of its own the nodes' 127.0.0.1 door needs the host's port, which the guest does not know; 6443 is always served.
    const endpoint = this.https && !process.env.KUBEWIRE_GUEST ? readEndpoint(paths.dir) : undefined;
    if (this.https) this.closeNodeApi = await serveApiInNodes(this.https, this.plan.nodes.map((n) => ({ name: n.name, netns: linux.at(linux.netnsPath(n.netns)), ip: n.ip })), endpoint?.port, this.log);
    // The ingress controllers come with the first Ingress (ingressWanted), never on `up`'s path:
    // in a kernel of its own each is seconds of Node starting. The watch starts them as that
    // Ingress arrives; the watchdog starts again one that died.
    this.ingresses = new Informer(this.client, resourceOfKind('Ingress'), () => {
      if (!this.ingressWanted) void this.checkIngressControllers();
    }, this.log);
    await this.ingresses.start();
    this.watchdog = setInterval(() => void this.checkIngressControllers(), 1000);
    this.watchdog.unref();
    this.stopReclaiming = reclaimAfterBursts();
    writeFileSync(paths.pidFile, `${process.pid}\n`, { mode: 0o600 });
    this.log(`kubewire daemon for cluster ${this.cluster} ready on ${paths.socket}`);
  }

  /**
   * A cluster-wide workload host left by an older kubewire (one process for every node) would
   * hold the pods' ports the nodes' hosts need: it goes, and the agents serve its pods again.
   */
  private async retireClusterHost(): Promise<void> {
    const paths = daemonPaths(this.cluster);
    const pid = existsSync(paths.hostPidFile) ? livePid(paths.hostPidFile, 'workload-host', this.cluster) : undefined;
    if (pid) {
      this.progress('stopping the cluster-wide workload host of an older kubewire');
      await stopProcess(pid, 2000);
    }
    rmSync(paths.hostPidFile, { force: true });
    rmSync(paths.hostSocket, { force: true });
  }

  private ingressCheck = false;
  /** The Ingresses, for whether the nodes run ingress controllers yet. */
  private ingresses?: Informer<KubeObject>;
  /**
   * Whether the nodes run ingress controllers: from the cluster's first Ingress on (people add
   * ingress-nginx to a cluster; here it comes with the first Ingress and stays), or when they
   * run already (a restarted daemon). Until then none costs a Node process on every node.
   */
  private ingressWanted = false;

  /** Every node runs an ingress controller once wanted; one that died (kill -9, OOM) is started again. */
  private async checkIngressControllers(): Promise<void> {
    this.ingressWanted ||= (this.ingresses?.items.size ?? 0) > 0 || ingressControllerPids(this.cluster).length > 0 || externalComponents(this.plan.spec);
    if (!this.ingressWanted || this.ingressCheck) return; // one check at a time: a start takes a moment
    this.ingressCheck = true;
    try {
      // The external layout: each node's proxy and ingress controller are programs of their own, started (again) here.
      const started = externalComponents(this.plan.spec) ? await ensureNodeComponents(this.plan) : await ensureIngressControllers(this.cluster, this.plan);
      if (started.length) this.log(`${externalComponents(this.plan.spec) ? 'started' : 'ingress controller started on'} ${started.join(', ')}`);
    } catch (e) {
      this.log(`ingress controllers: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.ingressCheck = false;
    }
  }

  private stopReclaiming?: () => void;

  async stop(): Promise<void> {
    clearInterval(this.watchdog);
    this.ingresses?.stop();
    this.stopReclaiming?.();
    await this.closeNodeApi?.();
    await this.https?.close();
    await this.server.close();
    await this.cniServer.close();
    this.controllers.stop();
    await Promise.all([...this.agents.map((a) => a.stop()), ...this.proxies.map((p) => p.stop()), ...this.policies.map((p) => p.stop())]);
    await this.sandboxes.close();
    for (const h of this.hosts) h.close();
    await Promise.all(this.ipamds.map((d) => d.stop()));
    for (const p of this.peers) p.stop();
    this.store.close();
    const paths = daemonPaths(this.cluster);
    if (readFileSync(paths.pidFile, 'utf8').trim() === String(process.pid)) rmSync(paths.pidFile, { force: true });
  }

}

/** `kubewire daemon`: runs until SIGTERM. */
export async function runDaemon(cluster: string, log?: (line: string) => void): Promise<void> {
  mkdirSync(clusterDir(cluster), { recursive: true, mode: 0o700 });
  const daemon = new Daemon(cluster, log);
  await daemon.start();
  reportLoopStats(process.env.KUBEWIRE_LOOP_STATS, (l) => process.stderr.write(`${new Date().toISOString()} ${l}\n`));
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void daemon.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
