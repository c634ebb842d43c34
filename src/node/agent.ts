// The node agent: the kubelet's network role for one node. It registers its Node, then
// converges every pod bound to it: a sandbox (netns + CNI lo/eth0), the containers (a
// command from the host filesystem, or a built-in workload), and the pod's status
// (podIP, hostIP, phase, conditions, containerStatuses). A deleted pod's processes are
// stopped, its attachment deleted through CNI and its namespace removed before the object
// goes. Its record of each pod (<node>/pods/<ns>_<name>_<uid>/pod.json) and the kernel
// are what a restarted agent adopts or cleans up.

import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MAX_PODS, type ContainerState, type ContainerStatus, type Node, type Pod, type PodPhase, type PodStatus } from '../api/types.ts';
import { now } from '../api/types.ts';
import type { Api } from '../apiserver/api.ts';
import { EventRecorder } from '../apiserver/events.ts';
import type { ClusterPlan, NodePlan } from '../cluster/plan.ts';
import type { NodeFiles } from '../cluster/topology.ts';
import { nameKey, splitKey, WorkQueue } from '../apiserver/workqueue.ts';
import type { Dataplane } from '../dataplane/port.ts';
import { writeFileAtomically, writeJsonAtomically } from '../state/files.ts';
import { kubewireCommand, workloadFor, type WorkloadSpec } from '../workloads/builtin.ts';
import { cliPath, stateRoot } from '../state/paths.ts';
import { DEFAULT_CLUSTER_DOMAIN, dnsServiceIP, vtep } from '../cluster/plan.ts';
import { flannelAnnotations } from './peers.ts';
import { parseResolvConf, podHostname, podHosts, podResolvConf, renderResolvConf, type ResolvConf } from './pod-view.ts';
import type { WorkloadHostClient } from '../workloads/client.ts';
import { isAlive, startDetached, stopProcess, type PodView, type ProcessRecord } from '../supervisor/supervisor.ts';
import { SandboxManager, type PodRef, type Sandboxes } from './sandbox.ts';
import { podRecordDir, podRecordDirs, readPodRecord, type PodRecordBase } from './records.ts';
import { ProbeManager, type ProbeKind, type ProbeTarget } from './probes.ts';
import { containerEnv, ContainerConfigError, passwdGroups, runAs, servicesForEnv } from './container-config.ts';
import type { ConfigMap, Container, Secret, Service } from '../api/types.ts';
import { NODE_LEASE_NAMESPACE, renewedLease, type Lease } from './lease.ts';
import { VERSION } from '../api/version.ts';
import { systemInfo } from './node-info.ts';

interface ContainerRecord {
  restartCount: number;
  process?: ProcessRecord;
  startedAt?: string;
  lastTerminated?: ContainerState['terminated'];
  /** The termination before lastTerminated: a finished container's lastState. */
  previousTerminated?: ContainerState['terminated'];
  /** While set, the container waits before its next start (CrashLoopBackOff). */
  backoffUntil?: number;
}

/** What the agent keeps on disk about a pod it runs. */
export interface LocalPod extends PodRecordBase {
  uid: string;
  namespace: string;
  name: string;
  netns: string;
  ip: string;
  mac?: string;
  hostVeth?: string;
  startTime: string;
  containers: Record<string, ContainerRecord>;
}

const BACKOFF_START_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

/** The pod's phase from its containers (pure); Kubernetes' rules for restartPolicy. */
export function podPhase(restartPolicy: string, states: ContainerState[]): PodPhase {
  if (states.some((s) => s.running)) return 'Running';
  const done = states.every((s) => s.terminated);
  if (done && restartPolicy !== 'Always') return states.every((s) => s.terminated!.exitCode === 0) ? 'Succeeded' : 'Failed';
  if (states.some((s) => s.terminated) || states.some((s) => s.waiting?.reason === 'CrashLoopBackOff')) return 'Running';
  return 'Pending';
}

export interface AgentOptions {
  api: Api;
  plan: ClusterPlan;
  node: NodePlan;
  files: NodeFiles;
  stateDir: string; // the node's directory
  /** Where built-in workloads run (the workload host; what the agent asks of it). */
  host: Pick<WorkloadHostClient, 'ensure' | 'stop'>;
  /** How the node's pods reach the kernel (namespaces, CNI). */
  dataplane: Dataplane;
  log: (line: string) => void;
  concurrency?: number;
  /** Called with a new pod's address before its containers start (NetworkPolicy isolates it first). */
  podStarting?: (pod: Pod, ip: string) => Promise<void>;
  /** Where the node's sandboxes are made (the daemon's thread for them); a SandboxManager in this thread if not given. */
  sandboxes?: Sandboxes;
}

export class NodeAgent {
  readonly sandboxes: Sandboxes;
  private readonly local = new Map<string, LocalPod>();
  /** Pids of processes this agent started in this run: their exit arrives as an event. */
  private readonly children = new Set<number>();
  private readonly queue: WorkQueue;
  private readonly podsDir: string;
  private readonly events: EventRecorder;
  private stopWatch?: () => void;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** The containers' startup, liveness and readiness probes. */
  private readonly probes: ProbeManager;

  constructor(private readonly o: AgentOptions) {
    this.sandboxes = o.sandboxes ?? new SandboxManager(o.plan.spec.name, o.node, o.files, o.dataplane);
    this.probes = new ProbeManager((netns, argv, input) => o.dataplane.at(netns).exec(argv, input), {
      changed: (key) => this.queue.add(key),
      failed: (key, _container, _kind, message) => {
        const { namespace, name } = splitKey(key);
        const pod = o.api.tryGet<Pod>({ kind: 'Pod', namespace, name });
        if (pod) this.events.record(pod, 'Warning', 'Unhealthy', message);
      },
      tripped: (key, container, kind, message) => void this.restartForProbe(key, container, kind, message).catch((e: Error) => o.log(`${o.node.name}: pod ${key}: ${e.message}`)),
    });
    this.podsDir = join(o.stateDir, 'pods');
    this.events = new EventRecorder(o.api, 'kubelet', o.node.name);
    this.queue = new WorkQueue((key) => this.sync(key), { concurrency: o.concurrency ?? 8, onError: (key, e) => o.log(`${o.node.name}: pod ${key}: ${e instanceof Error ? e.message : String(e)}`) });
  }

  get nodeName(): string {
    return this.o.node.name;
  }

  podDir(p: { namespace: string; name: string; uid: string }): string {
    return podRecordDir(this.podsDir, p);
  }

  async start(): Promise<void> {
    const { api, node } = this.o;
    this.register();
    this.renewLease();
    mkdirSync(this.podsDir, { recursive: true });
    // Adopt what a previous run left: records on disk, checked against the store and the kernel.
    for (const dir of podRecordDirs(this.podsDir)) {
      const rec = readPodRecord<LocalPod>(this.podsDir, dir);
      if (rec) this.local.set(nameKey(rec.namespace, rec.name), rec);
      else rmSync(join(this.podsDir, dir), { recursive: true, force: true }); // a record cut short by a crash
    }
    const mine = (api.list('Pod', undefined, { fieldSelector: `spec.nodeName=${node.name}` }).items as Pod[]).filter((p) => !p.metadata.deletionTimestamp);
    for (const [key, rec] of this.local) {
      const pod = mine.find((p) => nameKey(p.metadata.namespace, p.metadata.name) === key);
      if (!pod || pod.metadata.uid !== rec.uid) await this.teardown(rec, 0);
    }
    // Namespaces, IPs and rules of pods nobody wants any more (a crash between steps).
    const removed = await this.sandboxes.gc(mine.map(refOf)).catch((e: Error) => {
      this.o.log(e.message);
      return [];
    });
    if (removed.length) this.o.log(`${node.name}: removed ${removed.length} leftover pod namespace(s)`);
    const rv = api.store.currentRV();
    this.stopWatch = api.watch('Pod', undefined, rv, (e) => {
      const pod = e.object as Pod;
      const key = nameKey(pod.metadata.namespace, pod.metadata.name);
      if (pod.spec.nodeName === node.name || this.local.has(key)) this.queue.add(key);
    });
    this.resync();
    // Processes adopted after a restart are not our children: look at them now and then;
    // and every 10 s, everything (level-triggered: whatever drifted converges back).
    let ticks = 0;
    this.timer = setInterval(() => {
      void this.checkPods().catch((e: Error) => this.o.log(`${node.name}: checking pods: ${e.message}`));
      if (++ticks % 10 === 0) {
        this.resync();
        this.reportReadiness();
        this.renewLease();
      }
    }, 1000);
    this.timer.unref();
  }

  /** Queues every pod of this node for a sync. */
  resync(): void {
    for (const key of this.local.keys()) this.queue.add(key);
    for (const p of this.o.api.list('Pod', undefined, { fieldSelector: `spec.nodeName=${this.o.node.name}` }).items) this.queue.add(nameKey(p.metadata.namespace, p.metadata.name));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.probes.stop();
    this.stopWatch?.();
    clearInterval(this.timer);
    this.queue.stop();
    await this.queue.idle();
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Registers the Node (its podCIDR comes from node IPAM) and reports it Ready. */
  private register(): void {
    const { api, node } = this.o;
    const pods = String(this.o.plan.spec.maxPods ?? DEFAULT_MAX_PODS);
    const status = {
      capacity: { pods },
      allocatable: { pods },
      addresses: [{ type: 'InternalIP', address: node.ip }, { type: 'Hostname', address: node.name }],
      conditions: [
        { type: 'Ready', status: 'True' as const, reason: 'KubeletReady', message: 'kubewire node agent is posting ready status', lastHeartbeatTime: now(), lastTransitionTime: now() },
        // vpc mode: no podCIDR to wait for; the pod network is up once the node's ipamd is (the daemon starts it first).
        ...(this.o.plan.spec.mode === 'vpc' ? [{ type: 'NetworkUnavailable', status: 'False' as const, reason: 'VpcIpamdReady', message: "the node's ipamd hands out VPC addresses", lastTransitionTime: now() }] : []),
      ],
      nodeInfo: { kubeletVersion: VERSION.gitVersion, containerRuntimeVersion: 'kubewire://0.1.0', operatingSystem: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch, ...systemInfo() },
    };
    // vxlan mode: the node tells its peers where its VTEP is, as flanneld annotates it.
    const annotations = this.o.plan.spec.mode === 'vxlan' ? flannelAnnotations(node.ip, vtep(this.o.plan, node).mac) : undefined;
    if (!api.tryGet({ kind: 'Node', name: node.name })) {
      api.create<Node>({ apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, labels: { 'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux' }, ...(annotations ? { annotations } : {}) }, spec: {}, status }, { system: true });
    } else {
      if (annotations) api.mutate<Node>({ kind: 'Node', name: node.name }, (n) => (Object.entries(annotations).every(([k, v]) => n.metadata.annotations?.[k] === v) ? undefined : { ...n, metadata: { ...n.metadata, annotations: { ...n.metadata.annotations, ...annotations } } }));
      api.updateStatus({ kind: 'Node', name: node.name }, status);
    }
  }

  /** The node's heartbeat Lease, renewed (best effort: a store that refuses now is tried again in 10 s). */
  private renewLease(): void {
    const { api, node } = this.o;
    try {
      const existing = api.tryGet<Lease>({ kind: 'Lease', namespace: NODE_LEASE_NAMESPACE, name: node.name });
      const lease = renewedLease({ name: node.name, uid: api.tryGet({ kind: 'Node', name: node.name })?.metadata.uid }, new Date(), existing);
      if (existing) api.update(lease);
      else if (api.tryGet({ kind: 'Namespace', name: NODE_LEASE_NAMESPACE })) api.create(lease, { system: true });
    } catch (e) {
      this.o.log(`${node.name}: lease not renewed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** A node whose namespace is gone (someone removed it) is NotReady: the scheduler stops sending pods. */
  private reportReadiness(): void {
    const { api, node } = this.o;
    const ok = this.o.dataplane.netnsState(this.o.dataplane.netnsPath(node.netns)) === 'ok';
    const current = api.tryGet<Node>({ kind: 'Node', name: node.name });
    const ready = current?.status?.conditions?.find((c) => c.type === 'Ready');
    if (!current || (ready?.status === 'True') === ok) return;
    const condition = ok
      ? { type: 'Ready', status: 'True' as const, reason: 'KubeletReady', message: 'kubewire node agent is posting ready status', lastTransitionTime: now() }
      : { type: 'Ready', status: 'False' as const, reason: 'NodeNetworkUnavailable', message: `the node's network namespace ${node.netns} is gone (kubewire down and up rebuild it)`, lastTransitionTime: now() };
    api.updateStatus({ kind: 'Node', name: node.name }, { ...current.status, conditions: [condition, ...(current.status?.conditions ?? []).filter((c) => c.type !== 'Ready')] });
    this.o.log(`${node.name}: ${condition.message}`);
  }

  private save(rec: LocalPod): void {
    const dir = this.podDir(rec);
    mkdirSync(dir, { recursive: true });
    writeJsonAtomically(join(dir, 'pod.json'), rec, 0o600);
  }

  private async sync(key: string): Promise<void> {
    if (this.stopped) return;
    const { api, node } = this.o;
    const { namespace, name } = splitKey(key);
    const pod = api.tryGet<Pod>({ kind: 'Pod', namespace, name });
    let rec = this.local.get(key);
    if (rec && (!pod || pod.metadata.uid !== rec.uid || pod.spec.nodeName !== node.name)) {
      await this.teardown(rec, 0);
      rec = undefined;
    }
    if (!pod || pod.spec.nodeName !== node.name) return;
    if (pod.metadata.deletionTimestamp) {
      if (rec) for (const c of pod.spec.containers) this.events.record(pod, 'Normal', 'Killing', `Stopping container ${c.name}`);
      if (rec) await this.teardown(rec, ((pod.metadata.deletionGracePeriodSeconds as number | undefined) ?? 30) * 1000);
      api.finalize({ kind: 'Pod', namespace, name }, pod.metadata.uid);
      return;
    }
    if (rec && this.o.dataplane.netnsState(rec.netns) === 'missing') {
      // Someone removed the pod's namespace behind our back: a new sandbox, as the kubelet would make.
      this.o.log(`${node.name}: sandbox of ${key} is gone; recreating it`);
      await this.teardown(rec, 0);
      rec = undefined;
    }
    const restartPolicy = pod.spec.restartPolicy ?? 'Always';
    if (!rec) {
      const finished = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
      if (finished) return; // a pod that ran to completion does not start again
      this.publishCreating(pod);
      const sandbox = await this.sandboxes.create(refOf(pod), portMappings(pod)).catch((e: Error) => {
        this.events.record(pod, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${e.message}`);
        throw e;
      });
      rec = { uid: pod.metadata.uid!, namespace: namespace!, name, netns: sandbox.netns, ip: sandbox.ip, mac: sandbox.mac, hostVeth: sandbox.hostVeth, startTime: now(), containers: {} };
      this.local.set(key, rec);
      this.save(rec);
      await this.o.podStarting?.(pod, rec.ip);
    }
    const view = this.writeView(pod, rec);
    const statuses = await this.runContainers(pod, rec, restartPolicy, view);
    this.publish(pod, rec, statuses, restartPolicy);
  }

  /** The node's own resolver configuration (the host's: nodes keep the host's files), read once. */
  private nodeResolv?: ResolvConf;

  /** Views written by this agent, by pod uid: what they depend on (DNS fields, IP) does not change for a sandbox. */
  private readonly views = new Map<string, PodView>();

  /** The pod's resolv.conf, hosts and hostname, as the kubelet writes them: once per sandbox (after a restart, only what differs). */
  private writeView(pod: Pod, rec: LocalPod): PodView {
    const known = this.views.get(rec.uid);
    if (known) return known;
    const dir = join(this.podDir(rec), 'etc');
    this.nodeResolv ??= parseResolvConf(existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : '');
    const zone = this.o.plan.spec.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    const hostname = podHostname(pod);
    const files: Record<string, string> = {
      'resolv.conf': renderResolvConf(podResolvConf(pod, { zone, dnsIP: dnsServiceIP(this.o.plan.spec), node: this.nodeResolv })),
      hosts: podHosts(pod, { zone, ip: rec.ip }),
      hostname: `${hostname}\n`,
    };
    mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries(files)) {
      const path = join(dir, name);
      if (!existsSync(path) || readFileSync(path, 'utf8') !== text) writeFileAtomically(path, text, 0o644);
    }
    const view = { dir, hostname };
    this.views.set(rec.uid, view);
    return view;
  }

  private async runContainers(pod: Pod, rec: LocalPod, restartPolicy: string, view: PodView): Promise<ContainerStatus[]> {
    const builtins: WorkloadSpec[] = [];
    const statuses: ContainerStatus[] = [];
    let changed = false;
    for (const c of pod.spec.containers) {
      const w = workloadFor(c);
      const cr = (rec.containers[c.name] ??= { restartCount: 0 });
      const base = { name: c.name, image: c.image, restartCount: cr.restartCount };
      if (w !== 'process') {
        if (!cr.startedAt && cr.backoffUntil && Date.now() < cr.backoffUntil) {
          // Killed for its liveness probe: it waits out its back-off before it is served again.
          this.events.record(pod, 'Warning', 'BackOff', `Back-off restarting failed container ${c.name} in pod ${rec.name}`);
          this.queue.addAfter(nameKey(rec.namespace, rec.name), cr.backoffUntil - Date.now() + 10);
          statuses.push({ ...base, ready: false, started: false, state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off restarting failed container ${c.name} in pod ${rec.name}` } }, ...(cr.lastTerminated ? { lastState: { terminated: cr.lastTerminated } } : {}) });
          continue;
        }
        if (w !== 'idle') builtins.push(w);
        if (!cr.startedAt) {
          cr.startedAt = now();
          this.events.record(pod, 'Normal', 'Started', `Started container ${c.name}${w === 'idle' ? '' : ` (kubewire's built-in ${w.kind} workload on ${w.ports.map((p) => `${p.port}/${p.protocol}`).join(', ')})`}`);
        }
        const probed = this.probed(pod, rec, c, cr.startedAt);
        statuses.push({ ...base, ...probed, state: { running: { startedAt: cr.startedAt } }, ...(cr.lastTerminated ? { lastState: { terminated: cr.lastTerminated } } : {}) });
        continue;
      }
      if (cr.process && (this.children.has(cr.process.pid) || isAlive(cr.process))) {
        const probed = this.probed(pod, rec, c, `${cr.process.pid}@${cr.process.startedAt}`);
        statuses.push({ ...base, ...probed, state: { running: { startedAt: cr.process.startedAt } }, ...(cr.lastTerminated ? { lastState: { terminated: cr.lastTerminated } } : {}) });
        continue;
      }
      this.probes.forgetContainer(rec.uid, c.name);
      if (cr.process) {
        // It ended while nobody was watching (daemon restart): its exit code is lost.
        cr.previousTerminated = cr.lastTerminated;
        cr.lastTerminated = { exitCode: -1, reason: 'Unknown', startedAt: cr.process.startedAt, finishedAt: now() };
        cr.process = undefined;
        changed = true;
      }
      const exited = cr.lastTerminated;
      const mayRun = !exited || restartPolicy === 'Always' || (restartPolicy === 'OnFailure' && exited.exitCode !== 0);
      if (!mayRun) {
        statuses.push({ ...base, ready: false, started: false, state: { terminated: exited }, ...(cr.previousTerminated ? { lastState: { terminated: cr.previousTerminated } } : {}) });
        continue;
      }
      if (cr.backoffUntil && Date.now() < cr.backoffUntil) {
        this.events.record(pod, 'Warning', 'BackOff', `Back-off restarting failed container ${c.name} in pod ${rec.name}`);
        this.queue.addAfter(nameKey(rec.namespace, rec.name), cr.backoffUntil - Date.now() + 10);
        statuses.push({ ...base, ready: false, started: false, state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off restarting failed container ${c.name} in pod ${rec.name}` } }, ...(exited ? { lastState: { terminated: exited } } : {}) });
        continue;
      }
      if (exited) cr.restartCount++;
      // kubewire's own images (the cluster DNS) run kubewire itself.
      const own = kubewireCommand(c);
      const argv = own ? [process.execPath, ...own.node, cliPath(), own.command, '--cluster', this.o.plan.spec.name, ...(c.args ?? [])] : [...(c.command ?? []), ...(c.args ?? [])];
      const env: Record<string, string> = {
        PATH: process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        HOSTNAME: pod.metadata.name,
        POD_NAME: pod.metadata.name,
        POD_NAMESPACE: rec.namespace,
        POD_IP: rec.ip,
        NODE_NAME: this.o.node.name,
        HOST_IP: this.o.node.ip,
      };
      if (own) env.KUBEWIRE_STATE_DIR = stateRoot(); // kubewire's own process finds its cluster's files
      const key = nameKey(rec.namespace, rec.name);
      let user: { uid: number; gid: number } | undefined;
      try {
        Object.assign(env, this.containerEnv(pod, c, rec));
        user = runAs(pod, c, this.passwd());
      } catch (e) {
        if (!(e instanceof ContainerConfigError)) throw e;
        // As the kubelet: the container waits (CreateContainerConfigError) until what it needs exists.
        this.events.record(pod, 'Warning', 'Failed', `Error: ${e.message}`);
        this.queue.addAfter(key, 2000);
        statuses.push({ ...base, ready: false, started: false, state: { waiting: { reason: 'CreateContainerConfigError', message: e.message } }, ...(exited ? { lastState: { terminated: exited } } : {}) });
        if (exited) cr.restartCount--;
        continue;
      }
      const startedAt = Date.now();
      let pid = 0;
      try {
        cr.process = await startDetached({ argv, env, cwd: c.workingDir, netns: rec.netns, view, user, logFile: join(this.podDir(rec), c.name, '0.log') }, ({ code, signal }) => {
          this.children.delete(pid);
          const current = this.local.get(key);
          const record = current?.uid === rec.uid ? current.containers[c.name] : undefined;
          if (!record?.process) return;
          const signo = signal ? constants.signals[signal] : undefined;
          // A shell's convention, as the kubelet reports it: killed by signal N exits 128+N.
          record.previousTerminated = record.lastTerminated;
          record.lastTerminated = { exitCode: code ?? 128 + (signo ?? 0), ...(signo ? { signal: signo } : {}), reason: code === 0 ? 'Completed' : 'Error', startedAt: record.process.startedAt, finishedAt: now() };
          record.process = undefined;
          // Quick exits back off, doubling up to 30 s, as the kubelet's CrashLoopBackOff (10 s to 5 min) does.
          const ranMs = Date.now() - startedAt;
          record.backoffUntil = ranMs > 60_000 ? undefined : Date.now() + Math.min(BACKOFF_START_MS * 2 ** Math.min(record.restartCount, 10), BACKOFF_MAX_MS);
          this.save(current!);
          this.queue.add(key);
        });
      } catch (e) {
        this.events.record(pod, 'Warning', 'Failed', `Error: ${(e as Error).message}`);
        cr.lastTerminated = { exitCode: 127, reason: 'StartError', finishedAt: now() };
        cr.backoffUntil = Date.now() + Math.min(BACKOFF_START_MS * 2 ** Math.min(cr.restartCount, 10), BACKOFF_MAX_MS);
        this.save(rec);
        this.queue.addAfter(key, cr.backoffUntil - Date.now() + 10);
        statuses.push({ ...base, restartCount: cr.restartCount, ready: false, started: false, state: { waiting: { reason: 'StartError', message: (e as Error).message } } });
        continue;
      }
      pid = cr.process.pid;
      this.children.add(pid);
      this.events.record(pod, 'Normal', 'Started', `Started container ${c.name}`);
      changed = true;
      const probed = this.probed(pod, rec, c, `${cr.process.pid}@${cr.process.startedAt}`);
      statuses.push({ ...base, restartCount: cr.restartCount, ...probed, state: { running: { startedAt: cr.process.startedAt } }, ...(exited ? { lastState: { terminated: exited } } : {}) });
    }
    if (builtins.length) {
      await this.o.host.ensure(rec.uid, { pod: { name: rec.name, namespace: rec.namespace, ip: rec.ip, node: this.o.node.name, hostname: view.hostname }, netns: rec.netns, logDir: this.podDir(rec), workloads: builtins });
    }
    if (changed) this.save(rec);
    return statuses;
  }

  /** A running container's started and ready, from its probes (started and ready at once when it has none). */
  private probed(pod: Pod, rec: LocalPod, c: Container, instance: string): { started: boolean; ready: boolean } {
    let user: ProbeTarget['user'];
    try {
      user = runAs(pod, c, this.passwd());
    } catch {
      user = undefined;
    }
    this.probes.ensure(nameKey(rec.namespace, rec.name), rec.uid, c, instance, { podIP: rec.ip, podNetns: rec.netns, nodeNetns: this.o.dataplane.netnsPath(this.o.node.netns), user });
    return { started: this.probes.started(rec.uid, c.name), ready: this.probes.ready(rec.uid, c.name) };
  }

  /** A liveness or startup probe failed failureThreshold times: the container is killed and restarted, as the kubelet does. */
  private async restartForProbe(key: string, container: string, kind: ProbeKind, message: string): Promise<void> {
    const rec = this.local.get(key);
    const { namespace, name } = splitKey(key);
    const pod = this.o.api.tryGet<Pod>({ kind: 'Pod', namespace, name });
    const c = pod?.spec.containers.find((x) => x.name === container);
    const cr = rec?.containers[container];
    if (!rec || !pod || !c || !cr || pod.metadata.uid !== rec.uid || pod.metadata.deletionTimestamp) return;
    this.events.record(pod, 'Normal', 'Killing', `Container ${container} failed ${kind} probe, will be restarted`);
    this.o.log(`${this.o.node.name}: pod ${key}: container ${container} failed its ${kind} probe (${message}): restarting it`);
    // No more probes of this instance (a sync while it stops must not start them again).
    this.probes.hold(rec.uid, container);
    if (workloadFor(c) === 'process') {
      // Its exit is recorded by its exit handler (or by the next sync, for an adopted process), and it starts again.
      if (cr.process) await stopProcess(cr.process, (pod.spec.terminationGracePeriodSeconds ?? 30) * 1000);
      this.queue.add(key);
      return;
    }
    // A built-in workload: the workload host serves the pod's again, from a new start, after its back-off.
    cr.previousTerminated = cr.lastTerminated;
    cr.lastTerminated = { exitCode: 137, reason: 'Error', startedAt: cr.startedAt, finishedAt: now() };
    cr.startedAt = undefined;
    cr.restartCount++;
    cr.backoffUntil = Date.now() + Math.min(BACKOFF_START_MS * 2 ** Math.min(cr.restartCount - 1, 10), BACKOFF_MAX_MS);
    this.save(rec);
    await this.o.host.stop(rec.uid);
    this.queue.add(key);
  }

  private passwdCache?: Map<number, number>;

  /** The host's users' primary groups (the "image's" /etc/passwd: command containers run from the host's filesystem). */
  private passwd(): Map<number, number> {
    this.passwdCache ??= passwdGroups(existsSync('/etc/passwd') ? readFileSync('/etc/passwd', 'utf8') : '');
    return this.passwdCache;
  }

  /** The container's variables from env and envFrom, ConfigMaps and Secrets read now. */
  private containerEnv(pod: Pod, c: Container, rec: LocalPod): Record<string, string> {
    const ns = rec.namespace;
    return containerEnv(pod, c, {
      configMap: (name) => this.o.api.tryGet<ConfigMap>({ kind: 'ConfigMap', namespace: ns, name }),
      secret: (name) => this.o.api.tryGet<Secret>({ kind: 'Secret', namespace: ns, name }),
      services: () => {
        const master = this.o.api.tryGet<Service>({ kind: 'Service', namespace: 'default', name: 'kubernetes' });
        return servicesForEnv(pod, [...(master ? [master] : []), ...(this.o.api.list('Service', ns).items as Service[])]);
      },
    }, { podIP: rec.ip, hostIP: this.o.node.ip });
  }

  private publish(pod: Pod, rec: LocalPod, statuses: ContainerStatus[], restartPolicy: string): void {
    const phase = podPhase(restartPolicy, statuses.map((s) => s.state));
    const ready = phase === 'Running' && statuses.every((s) => s.ready);
    const previous = pod.status?.conditions ?? [];
    const cond = (type: string, ok: boolean) => {
      const status = ok ? ('True' as const) : ('False' as const);
      const old = previous.find((c) => c.type === type);
      return { type, status, lastTransitionTime: old?.status === status ? old.lastTransitionTime : now() };
    };
    const status: PodStatus = {
      phase,
      conditions: [cond('PodReadyToStartContainers', true), cond('Initialized', true), cond('Ready', ready), cond('ContainersReady', ready), cond('PodScheduled', true)],
      hostIP: this.o.node.ip,
      hostIPs: [{ ip: this.o.node.ip }],
      podIP: rec.ip,
      podIPs: [{ ip: rec.ip }],
      startTime: rec.startTime,
      containerStatuses: statuses,
    };
    this.o.api.store.write(() => {
      const current = this.o.api.tryGet<Pod>({ kind: 'Pod', namespace: rec.namespace, name: rec.name });
      if (current?.metadata.uid === rec.uid && !current.metadata.deletionTimestamp) this.o.api.updateStatus({ kind: 'Pod', namespace: rec.namespace, name: rec.name }, status);
    });
  }

  /** The kubelet's word while the sandbox is made: containers waiting, ContainerCreating (what `get pods` shows). */
  private publishCreating(pod: Pod): void {
    if (pod.status?.containerStatuses?.some((c) => c.state.waiting?.reason === 'ContainerCreating')) return;
    const status: PodStatus = {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now() }],
      hostIP: this.o.node.ip,
      hostIPs: [{ ip: this.o.node.ip }],
      containerStatuses: pod.spec.containers.map((c) => ({ name: c.name, image: c.image, ready: false, started: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } })),
    };
    this.o.api.store.write(() => {
      const current = this.o.api.tryGet<Pod>({ kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name });
      if (current && current.metadata.uid === pod.metadata.uid && !current.metadata.deletionTimestamp) this.o.api.updateStatus({ kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name }, status);
    });
  }

  /** Stops everything of a pod and removes its sandbox and record. */
  private async teardown(rec: LocalPod, graceMs: number): Promise<void> {
    const key = nameKey(rec.namespace, rec.name);
    this.views.delete(rec.uid);
    this.probes.forget(rec.uid);
    await this.o.host.stop(rec.uid).catch((e: Error) => this.o.log(`${this.o.node.name}: ${e.message}`));
    await Promise.all(Object.values(rec.containers).map((c) => (c.process ? stopProcess(c.process, graceMs) : undefined)));
    for (const c of Object.values(rec.containers)) c.process = undefined;
    // Anything else still running in the pod's namespace (a daemonised child) goes too.
    if (this.o.dataplane.netnsState(rec.netns) === 'ok') {
      for (const pid of this.o.dataplane.netnsPids(rec.netns)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    await this.sandboxes.remove(refOf(rec));
    rmSync(this.podDir(rec), { recursive: true, force: true });
    if (this.local.get(key)?.uid === rec.uid) this.local.delete(key);
  }

  /**
   * Once a second: processes adopted after a restart that ended (they are not our children,
   * so no exit event comes), and sandboxes removed behind our back, whose pods are reported
   * not ready at once (their endpoints leave the Services) until the sync makes a new one.
   */
  private async checkPods(): Promise<void> {
    if (this.checking || this.stopped) return;
    this.checking = true;
    try {
      // One listing of the node's namespaces (by the sandboxes' thread when there is one), not
      // two stat calls per pod per second on this loop; a pod set up or torn down meanwhile is
      // left to its own sync, and what the listing lacks is confirmed before it counts.
      const records = [...this.local];
      const present = new Set((await this.sandboxes.namespaces()).map((name) => this.o.dataplane.netnsPath(name)));
      for (const [key, rec] of records) {
        if (this.stopped || this.local.get(key) !== rec) continue;
        this.checkPod(key, rec, present);
      }
    } finally {
      this.checking = false;
    }
  }

  private checking = false;

  private checkPod(key: string, rec: LocalPod, present: Set<string>): void {
    if (!present.has(rec.netns) && this.o.dataplane.netnsState(rec.netns) === 'missing') {
      this.reportSandboxLost(rec);
      this.queue.add(key);
    } else if (Object.values(rec.containers).some((c) => c.process && !this.children.has(c.process.pid) && !isAlive(c.process))) this.queue.add(key);
  }

  /** The pod stays Running, its containers not ready, until its sandbox is made again (as the kubelet shows a lost sandbox). */
  private reportSandboxLost(rec: LocalPod): void {
    const key = { kind: 'Pod', namespace: rec.namespace, name: rec.name };
    const changed = this.o.api.store.write(() => {
      const pod = this.o.api.tryGet<Pod>(key);
      if (!pod || pod.metadata.uid !== rec.uid || pod.metadata.deletionTimestamp || !pod.status) return false;
      const notReady = new Set(['Ready', 'ContainersReady', 'PodReadyToStartContainers']);
      if (pod.status.conditions?.every((c) => !notReady.has(c.type) || c.status === 'False')) return false;
      const conditions = (pod.status.conditions ?? []).map((c) => (notReady.has(c.type) ? { ...c, status: 'False' as const, reason: 'SandboxLost', lastTransitionTime: now() } : c));
      const containerStatuses = (pod.status.containerStatuses ?? []).map((c) => ({ ...c, ready: false }));
      this.o.api.updateStatus(key, { ...pod.status, conditions, containerStatuses });
      return true;
    });
    if (changed) this.events.record({ kind: 'Pod', apiVersion: 'v1', metadata: { name: rec.name, namespace: rec.namespace, uid: rec.uid } }, 'Warning', 'SandboxChanged', 'Pod sandbox changed (its network namespace is gone), it will be killed and re-created.');
  }

  /**
   * The node's workload host died (kill -9, OOM): every built-in container it served died
   * with it. As when a container's process dies: each is recorded terminated (137, killed),
   * its pod reported not ready at once (its endpoints leave the Services before the restart),
   * and a sync starts it again, which starts a new host.
   */
  workloadHostLost(): void {
    const at = now();
    for (const [key, rec] of this.local) {
      const pod = this.o.api.tryGet<Pod>({ kind: 'Pod', namespace: rec.namespace, name: rec.name });
      if (!pod || pod.metadata.uid !== rec.uid) continue;
      const died = pod.spec.containers.filter((c) => isServed(workloadFor(c)) && rec.containers[c.name]?.startedAt).map((c) => c.name);
      if (!died.length) continue;
      for (const name of died) {
        const cr = rec.containers[name]!;
        cr.previousTerminated = cr.lastTerminated;
        cr.lastTerminated = { exitCode: 137, signal: 9, reason: 'Error', startedAt: cr.startedAt, finishedAt: at };
        cr.startedAt = undefined;
        cr.restartCount++;
        this.probes.forgetContainer(rec.uid, name);
      }
      this.save(rec);
      this.o.api.store.write(() => {
        const current = this.o.api.tryGet<Pod>({ kind: 'Pod', namespace: rec.namespace, name: rec.name });
        if (current?.metadata.uid !== rec.uid || current.metadata.deletionTimestamp || !current.status) return;
        this.o.api.updateStatus({ kind: 'Pod', namespace: rec.namespace, name: rec.name }, containersDied(current.status, died, rec.containers, at));
      });
      this.o.log(`${this.o.node.name}: pod ${key}: the workload host died with container(s) ${died.join(', ')}: starting them again`);
      this.queue.add(key);
    }
  }

  /** The pods this agent runs, as it knows them (for logs, describe and tests). */
  /** What a command run in a container gets (kubectl exec): the container's variables, read now as at its start. */
  execEnv(pod: Pod, c: Container): Record<string, string> {
    const rec = this.local.get(nameKey(pod.metadata.namespace!, pod.metadata.name));
    if (!rec) return {};
    try {
      return this.containerEnv(pod, c, rec);
    } catch (e) {
      if (e instanceof ContainerConfigError) return {};
      throw e;
    }
  }

  localPod(namespace: string, name: string): (LocalPod & { dir: string }) | undefined {
    const rec = this.local.get(nameKey(namespace, name));
    return rec && { ...rec, dir: this.podDir(rec) };
  }
}

/** Whether a container is one of the workload host's (a built-in server, not idle, not a process). */
function isServed(w: ReturnType<typeof workloadFor>): boolean {
  return w !== 'process' && w !== 'idle';
}

/**
 * A pod's status once some of its containers died (pure): those terminated and not ready
 * (their last state the one they died in), the pod's Ready and ContainersReady false, as
 * the kubelet reports a container that exited until it runs again.
 */
export function containersDied(status: PodStatus, died: string[], records: Record<string, Pick<ContainerRecord, 'restartCount' | 'lastTerminated' | 'previousTerminated'>>, at: string): PodStatus {
  const gone = new Set(died);
  const containerStatuses = (status.containerStatuses ?? []).map((c): ContainerStatus => {
    const r = records[c.name];
    if (!gone.has(c.name) || !r?.lastTerminated) return c;
    const { lastState: _, ...rest } = c;
    return { ...rest, ready: false, started: false, restartCount: r.restartCount, state: { terminated: r.lastTerminated }, ...(r.previousTerminated ? { lastState: { terminated: r.previousTerminated } } : {}) };
  });
  const notReady = new Set(['Ready', 'ContainersReady']);
  const conditions = (status.conditions ?? []).map((c) => (notReady.has(c.type) && c.status !== 'False' ? { ...c, status: 'False' as const, reason: 'ContainersNotReady', message: `containers with unready status: [${died.join(' ')}]`, lastTransitionTime: at } : c));
  return { ...status, conditions, containerStatuses };
}

function refOf(p: Pod | LocalPod): PodRef {
  if ('metadata' in p) return { uid: p.metadata.uid!, namespace: p.metadata.namespace!, name: p.metadata.name };
  return { uid: p.uid, namespace: p.namespace, name: p.name };
}

/** The portmap capability's input: containerPorts with a hostPort (kubelet's rule). */
function portMappings(pod: Pod): unknown[] {
  return pod.spec.containers.flatMap((c) =>
    (c.ports ?? []).filter((p) => p.hostPort).map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: (p.protocol ?? 'TCP').toLowerCase(), hostIP: p.hostIP ?? '' })),
  );
}
