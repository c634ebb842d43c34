// kubectl's verbs against a kubewire cluster's API: apply, delete, get, describe, logs,
// scale, exec, wait, rollout status. Flags and output follow kubectl.

import { historyTable, restartPatch, rollbackTemplate } from './rollout.ts';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { APPLY_PATH, apiVersionOf, resourceNamed, resourcePath, RESOURCES, type ResourceType } from '../api/resources.ts';
import type { DaemonSet, Deployment, EndpointSlice, Event, Ingress, Job, KubeObject, NetworkPolicy, Node, Pod, ReplicaSet, Service, StatefulSet } from '../api/types.ts';
import type { ApplyResult } from '../api/apply.ts';
import { ApiClient, ApiError } from '../client/rest.ts';
import { isNotFound } from '../apiserver/status.ts';
import { ClusterError, loadCluster } from '../cluster/cluster.ts';
import { podNetnsName, type ClusterPlan } from '../cluster/plan.ts';
import { daemonPid } from '../daemon/process.ts';
import { clusterKernel, GUEST_STATE_DIR, runProgramInKernel } from '../kernel/client.ts';
import { linux } from '../dataplane/linux/host.ts';
import { netnsPath } from '../dataplane/port.ts';
import { podRecordDir, podRecords, podRecordsDir } from '../node/records.ts';
import { loadManifests, ManifestError, type Manifest } from '../manifest/load.ts';
import { clusterDir, daemonPaths } from '../state/paths.ts';
import { asUser, runAttached, type PodView } from '../supervisor/supervisor.ts';
import { passwdGroups, runAs } from '../node/container-config.ts';
import { describeDeployment, describeWorkload, describeIngress, describeNode, describePod, describeService, eventsSection, podView } from './describe.ts';
import { describeNodeInKernel, describePodInKernel } from './describe-kernel.ts';
import { describeNetworkPolicy, podPoliciesSection } from './describe-netpol.ts';
import { printObjects, printTable } from './print.ts';

export const defaultCluster = (): string => process.env.KUBEWIRE_CLUSTER || 'kubewire';
const out = (s: string): void => void process.stdout.write(s.endsWith('\n') || !s ? s : `${s}\n`);

export function connect(cluster: string): { client: ApiClient; plan: ClusterPlan } {
  const plan = loadCluster(cluster);
  // A cluster in a kernel of its own: its API is relayed to the host at the same path (kernel/host.ts).
  const relayed = !process.env.KUBEWIRE_GUEST && clusterKernel(cluster) !== undefined;
  if (!relayed && !daemonPid(cluster)) throw new ClusterError(`the daemon of cluster ${cluster} is not running (kubewire up --cluster ${cluster} starts it again)`);
  if (relayed && !existsSync(daemonPaths(cluster).socket)) throw new ClusterError(`the kernel of cluster ${cluster} is not running (kubewire down --cluster ${cluster} removes what is left of it)`);
  const client = new ApiClient(daemonPaths(cluster).socket);
  // The API server's warnings, as kubectl prints them.
  client.onWarning = (text) => void process.stderr.write(`Warning: ${text}\n`);
  return { client, plan };
}

function resource(name: string): ResourceType {
  const rt = resourceNamed(name);
  if (!rt) throw new ClusterError(`the server doesn't have a resource type "${name}" (kubewire serves ${RESOURCES.map((r) => r.plural).join(', ')})`);
  return rt;
}

/** "pod/web" or ("pod", "web"): kubectl accepts both. */
function target(kindOrSlash: string, name?: string): { rt: ResourceType; name?: string } {
  if (kindOrSlash.includes('/')) {
    const [k, n] = kindOrSlash.split('/', 2) as [string, string];
    return { rt: resource(k), name: n };
  }
  return { rt: resource(kindOrSlash), name };
}

/** kubectl's "deployment.apps/web" form. */
function ref(rt: ResourceType, name: string): string {
  return `${rt.group ? `${rt.singular}.${rt.group}` : rt.singular}/${name}`;
}

function namespaceFor(rt: ResourceType, obj: KubeObject, flag: string | undefined): string | undefined {
  if (!rt.namespaced) return undefined;
  const own = obj.metadata.namespace;
  if (own && flag && own !== flag) {
    throw new ManifestError(`the namespace from the provided object "${own}" does not match the namespace "${flag}". You must pass '--namespace=${own}' to perform this operation.`);
  }
  return own || flag || 'default';
}

/** kubectl rollout status's words for a StatefulSet or a DaemonSet (pure). */
export function rolloutLine(obj: StatefulSet | DaemonSet): { done: boolean; text: string } {
  const name = obj.metadata.name;
  if (((obj.status as { observedGeneration?: number } | undefined)?.observedGeneration ?? 0) < (obj.metadata.generation ?? 0)) return { done: false, text: `Waiting for ${obj.kind === 'StatefulSet' ? 'statefulset' : 'daemon set'} spec update to be observed...` };
  if (obj.kind === 'DaemonSet') {
    const s = (obj as DaemonSet).status;
    const want = s?.desiredNumberScheduled ?? 0;
    if ((s?.updatedNumberScheduled ?? 0) < want) return { done: false, text: `Waiting for daemon set "${name}" rollout to finish: ${s?.updatedNumberScheduled ?? 0} out of ${want} new pods have been updated...` };
    if ((s?.numberAvailable ?? 0) < want) return { done: false, text: `Waiting for daemon set "${name}" rollout to finish: ${s?.numberAvailable ?? 0} of ${want} updated pods are available...` };
    return { done: true, text: `daemon set "${name}" successfully rolled out` };
  }
  const sts = obj as StatefulSet;
  const s = sts.status;
  const want = sts.spec.replicas ?? 1;
  if ((s?.readyReplicas ?? 0) < want) return { done: false, text: `Waiting for ${want - (s?.readyReplicas ?? 0)} pods to be ready...` };
  if (s?.updateRevision !== s?.currentRevision || (s?.updatedReplicas ?? 0) < want) return { done: false, text: `Waiting for statefulset rolling update to complete ${s?.updatedReplicas ?? 0} pods at revision ${s?.updateRevision}...` };
  return { done: true, text: `statefulset rolling update complete ${want} pods at revision ${s?.currentRevision}...` };
}

/** Above this many objects apply prints a summary instead of a line per object. */
const SUMMARY_OVER = 100;

/**
 * kubectl apply, the whole manifest in one request and one transaction on the server
 * (api.ts apply): nothing changes unless every object passes. Namespaces go first so that
 * objects in a namespace made by the same apply find it.
 */
export async function apply(client: ApiClient, manifests: Manifest[], nsFlag: string | undefined, dryRun: boolean, print: (line: string) => void = out, progress: (line: string) => void = () => {}, fieldValidation: 'Strict' | 'Warn' | 'Ignore' = 'Strict'): Promise<void> {
  const ordered = [...manifests.filter((m) => m.rt.kind === 'Namespace'), ...manifests.filter((m) => m.rt.kind !== 'Namespace')];
  const items = ordered.map((m) => {
    const obj: KubeObject = { ...structuredClone(m.object), apiVersion: apiVersionOf(m.rt) };
    const ns = namespaceFor(m.rt, obj, nsFlag);
    if (ns) obj.metadata.namespace = ns;
    return obj;
  });
  progress(`applying ${items.length} objects`);
  const t0 = performance.now();
  let answer: { items: Array<{ result: ApplyResult }> };
  try {
    // The server checks every field against the schemas, as kubectl's --validate asks of kube-apiserver.
    answer = await client.call('POST', `${APPLY_PATH}?${dryRun ? 'dryRun=All&' : ''}fieldValidation=${fieldValidation}`, { apiVersion: 'v1', kind: 'List', items });
  } catch (e) {
    const index = e instanceof ApiError ? e.details?.index : undefined;
    if (typeof index !== 'number' || !ordered[index]) throw e;
    const m = ordered[index]!;
    throw new ManifestError(`nothing was applied:\n  ${m.source}: document ${m.index} (${m.rt.kind} ${JSON.stringify(m.object.metadata.name)}): ${(e as Error).message}`);
  }
  const suffix = dryRun ? ' (dry run)' : '';
  const results = answer.items.map((r) => r.result);
  if (results.length <= SUMMARY_OVER) {
    results.forEach((r, i) => print(`${ref(ordered[i]!.rt, items[i]!.metadata.name)} ${r}${suffix}`));
    return;
  }
  const count = (r: ApplyResult) => results.filter((x) => x === r).length;
  print(`${results.length} objects applied in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${count('created')} created, ${count('configured')} configured, ${count('unchanged')} unchanged${suffix}`);
}

async function waitGone(client: ApiClient, rt: ResourceType, ns: string | undefined, name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const gone = await client.get(rt, ns, name).then(() => false, isNotFound);
    if (gone) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function parseDuration(text: string, flag: string): number {
  const m = text.match(/^(\d+(?:\.\d+)?)(ms|s|m|h)?$/);
  if (!m) throw new ClusterError(`${flag} ${JSON.stringify(text)} is not a duration such as 30s or 2m`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

function conditionTrue(obj: KubeObject, type: string): boolean {
  const conditions = (obj.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type.toLowerCase() === type.toLowerCase() && c.status === 'True');
}

/** The network namespace of a pod, as its node agent named it. */
/** Where a pod's node agent keeps its files (its logs, its resolv.conf, hosts and hostname under etc/). */
export function podDir(cluster: string, pod: Pod): string | undefined {
  if (!pod.spec.nodeName || !pod.metadata.uid) return undefined;
  return podRecordDir(podRecordsDir(cluster, pod.spec.nodeName), { namespace: pod.metadata.namespace!, name: pod.metadata.name, uid: pod.metadata.uid });
}

export function podNetns(cluster: string, plan: ClusterPlan, pod: Pod): string | undefined {
  const node = plan.nodes.find((n) => n.name === pod.spec.nodeName);
  if (!node || !pod.metadata.uid) return undefined;
  const path = netnsPath(podNetnsName(cluster, node.name, { namespace: pod.metadata.namespace!, name: pod.metadata.name }));
  return existsSync(path) ? path : undefined;
}


/** `get -w`: the table, then one row per change (kubectl prints no header again). */
async function watchTable(client: ApiClient, rt: ResourceType, ns: string | undefined, items: KubeObject[], rv: string, names: string[], o: { allNamespaces?: boolean; output?: string; selector?: string; fieldSelector?: string; headers?: boolean }): Promise<void> {
  const opts = { wide: o.output === 'wide', allNamespaces: Boolean(o.allNamespaces) };
  if (items.length || o.headers !== false) out(printTable(rt, items, { ...opts, noHeaders: o.headers === false }));
  if (!rv) rv = (await client.list(rt, ns, { labelSelector: o.selector, fieldSelector: o.fieldSelector })).metadata.resourceVersion;
  await new Promise<void>((resolve) => {
    void client.watch(rt, ns, { resourceVersion: rv, labelSelector: o.selector, fieldSelector: o.fieldSelector }, (e) => {
      if (names.length && !names.includes(e.object.metadata.name)) return;
      out(printTable(rt, [e.object], opts).split('\n').slice(1).join('\n'));
    }).then((stop) => process.once('SIGINT', () => {
      stop();
      resolve();
    }));
  });
}

/**
 * A directory of `iptables`, `iptables-save`, `iptables-restore` (and ip6tables') that are the
 * cluster's backend, for commands run on a node; undefined when the host's default is it.
 */
export function nodeToolsDir(cluster: string, backend: 'legacy' | 'nft' | undefined): string | undefined {
  if (!backend) return undefined;
  const dir = join(clusterDir(cluster), `bin-iptables-${backend}`);
  for (const family of ['iptables', 'ip6tables']) {
    for (const verb of ['', '-save', '-restore']) {
      const link = join(dir, `${family}${verb}`);
      const target = `/usr/sbin/${family}-${backend}${verb}`;
      if (existsSync(link) || !existsSync(target)) continue;
      mkdirSync(dir, { recursive: true });
      symlinkSync(target, link);
    }
  }
  return dir;
}

async function runIn(netns: string, command: string[], env?: Record<string, string>, view?: PodView): Promise<number> {
  if (!command.length) throw new ClusterError('you must specify at least one command for the container (after --)');
  return runAttached(command, { netns, env: { ...process.env, ...env }, ...(view ? { view } : {}) });
}

const clusterOpt = (c: Command) => c.option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster());
const nsOpt = (c: Command) => c.option('-n, --namespace <ns>', 'namespace');

export function registerKubectlCommands(program: Command): void {
  clusterOpt(nsOpt(program.command('apply')))
    .description('create or update objects from manifests (multi-document YAML, JSON, directories, - for stdin)')
    .requiredOption('-f, --filename <file...>', 'file, directory or - (repeatable)')
    .option('--dry-run <mode>', 'server: check everything, change nothing')
    .option('--validate <mode>', 'strict or true (unknown fields are errors), warn (warnings), ignore or false', 'strict')
    .action(async (o: { cluster: string; namespace?: string; filename: string[]; dryRun?: string; validate: string }) => {
      // A long apply says what it is doing on a terminal (stderr); the result goes to stdout.
      const tty = process.stderr.isTTY;
      const progress = (line: string) => tty && process.stderr.write(`\r\x1b[K${line}...`);
      try {
        progress('reading and checking the manifests');
        const mode = ({ strict: 'Strict', true: 'Strict', warn: 'Warn', ignore: 'Ignore', false: 'Ignore' } as const)[o.validate as 'strict'];
        if (!mode) throw new ManifestError(`--validate: ${JSON.stringify(o.validate)} is not one of strict, warn, ignore, true, false`);
        const manifests = loadManifests(o.filename, undefined, { validate: mode === 'Strict' ? 'strict' : 'ignore' });
        const { client } = connect(o.cluster);
        await apply(client, manifests, o.namespace, o.dryRun === 'server' || o.dryRun === 'client', out, progress, mode);
      } finally {
        if (tty) process.stderr.write('\r\x1b[K');
      }
    });

  clusterOpt(nsOpt(program.command('delete')))
    .description('delete objects by file, or by kind and names (kubectl delete pod web-1 / -f app.yaml)')
    .argument('[args...]', 'KIND NAME... or KIND/NAME...')
    .option('-f, --filename <file...>', 'delete what these manifests describe')
    .option('-l, --selector <selector>', 'delete the objects of KIND with these labels')
    .option('--all', 'delete every object of KIND in the namespace')
    .option('--grace-period <seconds>', 'seconds a pod gets to stop (0 with --force: at once)')
    .option('--now', 'same as --grace-period=1')
    .option('--force', 'with --grace-period=0: remove pods without waiting for their node')
    .option('--ignore-not-found', 'no error for objects that do not exist')
    .option('--wait <bool>', 'wait until the objects are gone', 'true')
    .option('--timeout <duration>', 'how long --wait waits', '60s')
    .action(async (args: string[], o: { cluster: string; namespace?: string; filename?: string[]; selector?: string; all?: boolean; gracePeriod?: string; now?: boolean; force?: boolean; ignoreNotFound?: boolean; wait: string; timeout: string }) => {
      const targets: Array<{ rt: ResourceType; ns?: string; name: string }> = [];
      if (o.filename) {
        for (const m of loadManifests(o.filename)) targets.push({ rt: m.rt, ns: namespaceFor(m.rt, m.object, o.namespace), name: m.object.metadata.name });
      }
      const { client } = connect(o.cluster);
      if (args.length) {
        if (args[0]!.includes('/')) for (const a of args) {
          const t = target(a);
          targets.push({ rt: t.rt, ns: t.rt.namespaced ? o.namespace ?? 'default' : undefined, name: t.name! });
        }
        else {
          const rt = resource(args[0]!);
          const ns = rt.namespaced ? o.namespace ?? 'default' : undefined;
          for (const name of args.slice(1)) targets.push({ rt, ns, name });
          if (o.all || o.selector) {
            const list = await client.list(rt, ns, { labelSelector: o.selector });
            for (const item of list.items) targets.push({ rt, ns, name: item.metadata.name });
          } else if (args.length === 1) throw new ClusterError(`resource(s) were provided, but no name was specified (use --all or -l to delete many)`);
        }
      }
      if (!targets.length) {
        if (o.all || o.selector) return out('No resources found');
        throw new ClusterError('nothing to delete: give -f FILE, KIND NAME, or KIND --all');
      }
      const grace = o.force && o.gracePeriod === '0' ? 0 : o.now ? 1 : o.gracePeriod !== undefined ? Number(o.gracePeriod) : undefined;
      const deleted: typeof targets = [];
      for (const t of targets) {
        try {
          await client.delete(t.rt, t.ns, t.name, grace);
          out(`${ref(t.rt, t.name).replace('/', ' "')}" deleted`);
          deleted.push(t);
        } catch (e) {
          if (isNotFound(e) && o.ignoreNotFound) continue;
          if (isNotFound(e)) throw new ClusterError(`${t.rt.plural}${t.rt.group ? `.${t.rt.group}` : ''} "${t.name}" not found${t.ns ? ` in namespace ${t.ns}` : ''}`);
          throw e;
        }
      }
      if (o.wait !== 'false') {
        const timeout = parseDuration(o.timeout, '--timeout');
        for (const t of deleted) if (!(await waitGone(client, t.rt, t.ns, t.name, timeout))) throw new ClusterError(`timed out waiting for ${ref(t.rt, t.name)} to be deleted`);
      }
    });

  clusterOpt(nsOpt(program.command('get')))
    .description('display one or many objects (pods, deployments, statefulsets, daemonsets, jobs, services, endpointslices, configmaps, nodes, namespaces)')
    .argument('<kind>', 'a kind (pods, svc, deploy, ...), KIND/NAME, several as svc,pods, or all')
    .argument('[names...]', 'object names')
    .option('-A, --all-namespaces', 'list across all namespaces')
    .option('-o, --output <format>', 'wide | json | yaml | name')
    .option('-l, --selector <selector>', 'label selector, e.g. app=web,tier!=db')
    .option('--field-selector <selector>', 'field selector, e.g. spec.nodeName=kubewire-node-1')
    .option('-w, --watch', 'after listing, print each change as it happens (Ctrl-C stops)')
    .option('--no-headers', 'tables without their header line')
    .action(async (kind: string, names: string[], o: { cluster: string; namespace?: string; allNamespaces?: boolean; output?: string; selector?: string; fieldSelector?: string; watch?: boolean; headers: boolean }) => {
      // Several kinds at once (get svc,pods; get all): a table per kind, names as kind/name.
      if ((kind.includes(',') || kind === 'all') && !kind.includes('/')) {
        if (names.length || o.watch) throw new ClusterError('names and --watch need a single kind');
        const kinds = kind === 'all' ? ['pods', 'services', 'daemonsets', 'deployments', 'statefulsets', 'jobs'] : kind.split(',');
        const rts = kinds.map(resource);
        if (o.output && !['wide', 'json', 'yaml', 'name'].includes(o.output)) throw new ClusterError(`unable to match a printer suitable for the output format "${o.output}", allowed formats are: json,name,wide,yaml`);
        const { client } = connect(o.cluster);
        const lists = await Promise.all(rts.map(async (rt) => ({ rt, items: (await client.list(rt, rt.namespaced && !o.allNamespaces ? o.namespace ?? 'default' : undefined, { labelSelector: o.selector, fieldSelector: o.fieldSelector })).items })));
        if (o.output === 'json' || o.output === 'yaml') return out(printObjects(lists.flatMap((l) => l.items), o.output, false, rts[0]!));
        if (o.output === 'name') return out(lists.filter((l) => l.items.length).map((l) => printObjects(l.items, 'name', false, l.rt)).join('\n'));
        const tables = lists.filter((l) => l.items.length).map((l) => {
          const prefix = l.rt.group ? `${l.rt.singular}.${l.rt.group}/` : `${l.rt.singular}/`;
          const named = l.items.map((i) => ({ ...i, metadata: { ...i.metadata, name: `${prefix}${i.metadata.name}` } }));
          return printTable(l.rt, named, { wide: o.output === 'wide', allNamespaces: Boolean(o.allNamespaces), noHeaders: !o.headers });
        });
        if (!tables.length) process.stderr.write('No resources found\n');
        return out(tables.join('\n\n'));
      }
      const t = target(kind, names[0]);
      const all = [...(t.name && kind.includes('/') ? [t.name] : []), ...names];
      if (o.output && !['wide', 'json', 'yaml', 'name'].includes(o.output)) throw new ClusterError(`unable to match a printer suitable for the output format "${o.output}", allowed formats are: json,name,wide,yaml`);
      const { client } = connect(o.cluster);
      const ns = t.rt.namespaced && !o.allNamespaces ? o.namespace ?? 'default' : undefined;
      let items: KubeObject[] = [];
      if (all.length) items = await Promise.all(all.map((n) => client.get(t.rt, ns, n).catch((e: unknown) => {
        if (isNotFound(e)) throw new ClusterError(`${t.rt.plural}${t.rt.group ? `.${t.rt.group}` : ''} "${n}" not found`);
        throw e;
      })));
      let listRV = '';
      if (!all.length) {
        const list = await client.list(t.rt, ns, { labelSelector: o.selector, fieldSelector: o.fieldSelector });
        items = list.items;
        listRV = list.metadata.resourceVersion;
      }
      if (o.watch) return watchTable(client, t.rt, ns, items, listRV, all, o);
      if (o.output === 'json' || o.output === 'yaml' || o.output === 'name') return out(printObjects(items, o.output, all.length === 1, t.rt));
      if (!items.length) {
        process.stderr.write(ns ? `No resources found in ${ns} namespace.\n` : 'No resources found\n');
        return;
      }
      out(printTable(t.rt, items, { wide: o.output === 'wide', allNamespaces: Boolean(o.allNamespaces), noHeaders: !o.headers }));
    });

  clusterOpt(nsOpt(program.command('describe')))
    .description('show an object in detail; nodes and pods with their network as the kernel holds it')
    .argument('<kind>', 'node | pod | deployment | service (or KIND/NAME)')
    .argument('[name]', 'object name')
    .action(async (kind: string, name: string | undefined, o: { cluster: string; namespace?: string }) => {
      const t = target(kind, name);
      if (!t.name) throw new ClusterError(`describe needs a name: kubewire describe ${t.rt.singular} NAME`);
      const { client, plan } = connect(o.cluster);
      const ns = t.rt.namespaced ? o.namespace ?? 'default' : undefined;
      const obj = await client.get(t.rt, ns, t.name).catch((e: unknown) => {
        if (isNotFound(e)) throw new ClusterError(`${t.rt.plural}${t.rt.group ? `.${t.rt.group}` : ''} "${t.name}" not found`);
        throw e;
      });
      const events = async () =>
        eventsSection(t.rt.namespaced ? (await client.list<Event>(resource('events'), ns, { fieldSelector: `involvedObject.uid=${obj.metadata.uid}` })).items : []);
      if (t.rt.kind === 'Node') {
        const pods = (await client.list<Pod>(resource('pods'), undefined, { fieldSelector: `spec.nodeName=${t.name}` })).items.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
        // A cluster in a kernel of its own: described from here, as a pod is.
        if (!process.env.KUBEWIRE_GUEST && clusterKernel(o.cluster) !== undefined) return out(await describeNodeInKernel(o.cluster, plan, obj as Node, pods));
        return out(await describeNode(linux, obj as Node, pods, plan, podRecords(podRecordsDir(o.cluster, t.name))));
      }
      if (t.rt.kind === 'Pod') {
        // A cluster in a kernel of its own: described from here, its kernel read by the guest's tools.
        const inKernel = !process.env.KUBEWIRE_GUEST && clusterKernel(o.cluster) !== undefined;
        const pod = obj as Pod;
        const podEvents = events(); // asked meanwhile
        const policies = client.list<NetworkPolicy>(resource('networkpolicies'), ns);
        return out(`${inKernel ? await describePodInKernel(o.cluster, plan, pod) : await describePod(linux, pod, plan, podNetns(o.cluster, plan, pod), podView(podDir(o.cluster, pod)))}\n${podPoliciesSection(pod, (await policies).items)}\n${await podEvents}`);
      }
      const ownedBy = (uids: Set<string | undefined>) => (o: KubeObject) => (o.metadata.ownerReferences ?? []).some((r) => uids.has(r.uid));
      if (t.rt.kind === 'StatefulSet' || t.rt.kind === 'DaemonSet' || t.rt.kind === 'Job' || t.rt.kind === 'ReplicaSet') {
        const pods = (await client.list<Pod>(resource('pods'), ns)).items.filter(ownedBy(new Set([obj.metadata.uid])));
        return out(`${describeWorkload(obj as StatefulSet | DaemonSet | Job | ReplicaSet, pods)}\n${await events()}`);
      }
      if (t.rt.kind === 'Deployment') {
        const d = obj as Deployment;
        const sets = (await client.list<ReplicaSet>(resource('replicasets'), ns)).items.filter(ownedBy(new Set([d.metadata.uid])));
        const pods = (await client.list<Pod>(resource('pods'), ns)).items.filter(ownedBy(new Set(sets.map((rs) => rs.metadata.uid))));
        return out(`${describeDeployment(d, pods, sets)}\n${await events()}`);
      }
      if (t.rt.kind === 'Service') {
        const slices = (await client.list<EndpointSlice>(resource('endpointslices'), ns, { labelSelector: `kubernetes.io/service-name=${t.name}` })).items;
        return out(`${await describeService(linux, obj as Service, slices, plan)}\n${await events()}`);
      }
      if (t.rt.kind === 'Ingress') {
        const [services, slices] = await Promise.all([client.list<Service>(resource('services'), ns), client.list<EndpointSlice>(resource('endpointslices'), ns)]);
        return out(`${describeIngress(obj as Ingress, services.items, slices.items)}\n${await events()}`);
      }
      if (t.rt.kind === 'NetworkPolicy') return out(describeNetworkPolicy(obj as NetworkPolicy)); // kubectl prints no events for it
      out(printObjects([obj], 'yaml', true, t.rt));
    });

  clusterOpt(nsOpt(program.command('logs')))
    .description("print a container's log (the built-in workload's requests, or the command's output)")
    .argument('<pod>', 'pod name (or pod/NAME, or job/NAME, deployment/NAME...: one of its pods)')
    .option('-c, --container <name>', 'container name (needed when the pod has several)')
    .option('-f, --follow', 'stream new lines until interrupted')
    .option('--tail <lines>', 'only the last N lines')
    .action(async (podArg: string, o: { cluster: string; namespace?: string; container?: string; follow?: boolean; tail?: string }) => {
      let name = podArg.replace(/^(pod|pods|po)\//, '');
      const { client } = connect(o.cluster);
      if (name.includes('/')) {
        // job/NAME, deployment/NAME...: one of its pods, as kubectl picks it (the oldest).
        const t = target(name);
        const owner = await client.get(t.rt, o.namespace ?? 'default', t.name!).catch((e: unknown) => {
          if (isNotFound(e)) throw new ClusterError(`${t.rt.plural}${t.rt.group ? `.${t.rt.group}` : ''} "${t.name}" not found`);
          throw e;
        });
        const owned = (await client.list<Pod>(resource('pods'), o.namespace ?? 'default')).items.filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === owner.metadata.uid)).sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name));
        if (!owned.length) throw new ClusterError(`no pods of ${ref(t.rt, t.name!)} found`);
        if (owned.length > 1) process.stderr.write(`Found ${owned.length} pods, using pod/${owned[0]!.metadata.name}\n`);
        name = owned[0]!.metadata.name;
      }
      const q = new URLSearchParams();
      if (o.container) q.set('container', o.container);
      if (o.follow) q.set('follow', 'true');
      if (o.tail !== undefined && o.tail !== '-1') q.set('tailLines', o.tail);
      await client.stream(`${resourcePath(resource('pods'), o.namespace ?? 'default', name, 'log')}?${q}`, (c) => process.stdout.write(c));
    });

  clusterOpt(nsOpt(program.command('scale')))
    .description('set the number of replicas of a Deployment or a StatefulSet')
    .argument('<target...>', 'deployment/NAME, statefulset/NAME or KIND NAME')
    .requiredOption('--replicas <n>', 'the new number of replicas')
    .action(async (args: string[], o: { cluster: string; namespace?: string; replicas: string }) => {
      const t = target(args[0]!, args[1]);
      if ((t.rt.kind !== 'Deployment' && t.rt.kind !== 'StatefulSet') || !t.name) throw new ClusterError('scale works on deployments and statefulsets: kubewire scale deployment/NAME --replicas=N');
      if (!/^\d+$/.test(o.replicas)) throw new ClusterError(`--replicas ${JSON.stringify(o.replicas)} is not a whole number`);
      const { client } = connect(o.cluster);
      await client.call('PATCH', resourcePath(t.rt, o.namespace ?? 'default', t.name, 'scale'), { spec: { replicas: Number(o.replicas) } });
      out(`${ref(t.rt, t.name)} scaled`);
    });

  clusterOpt(nsOpt(program.command('wait')))
    .description('wait for a condition on objects: --for=condition=Ready pod -l app=web, --for=delete pod/x')
    .argument('<target...>', 'KIND/NAME, KIND NAME, or KIND with -l / --all')
    .requiredOption('--for <condition>', 'condition=TYPE or delete')
    .option('-l, --selector <selector>', 'label selector')
    .option('--all', 'every object of KIND')
    .option('--timeout <duration>', 'how long to wait', '30s')
    .action(async (args: string[], o: { cluster: string; namespace?: string; for: string; selector?: string; all?: boolean; timeout: string }) => {
      const t = target(args[0]!, args[1]);
      const { client } = connect(o.cluster);
      const ns = t.rt.namespaced ? o.namespace ?? 'default' : undefined;
      const want = o.for === 'delete' ? undefined : o.for.match(/^condition=(\w+)$/)?.[1];
      if (o.for !== 'delete' && !want) throw new ClusterError(`--for ${JSON.stringify(o.for)}: expected condition=TYPE or delete`);
      const deadline = Date.now() + parseDuration(o.timeout, '--timeout');
      const fetch = async () => (t.name ? [await client.get(t.rt, ns, t.name).catch((e: unknown) => { if (isNotFound(e)) return undefined; throw e; })].filter((x): x is KubeObject => Boolean(x)) : (await client.list(t.rt, ns, { labelSelector: o.selector })).items);
      for (;;) {
        const items = await fetch();
        if (o.for === 'delete' ? items.length === 0 : items.length > 0 && items.every((i) => conditionTrue(i, want!))) {
          if (o.for === 'delete') out(`${t.name ? ref(t.rt, t.name) : t.rt.plural} condition met`);
          else for (const i of items) out(`${ref(t.rt, i.metadata.name)} condition met`);
          return;
        }
        if (Date.now() > deadline) throw new ClusterError(`timed out waiting for the condition on ${t.name ? ref(t.rt, t.name) : t.rt.plural}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    });

  const rollout = program.command('rollout').description('manage the rollout of a Deployment');
  clusterOpt(nsOpt(rollout.command('status')))
    .description('watch a Deployment, StatefulSet or DaemonSet until all its pods are updated and ready')
    .argument('<target...>', 'deployment/NAME, statefulset/NAME, daemonset/NAME or KIND NAME')
    .option('--timeout <duration>', 'how long to wait', '120s')
    .action(async (args: string[], o: { cluster: string; namespace?: string; timeout: string }) => {
      const t = target(args[0]!, args[1]);
      if (!['Deployment', 'StatefulSet', 'DaemonSet'].includes(t.rt.kind) || !t.name) throw new ClusterError('rollout status works on deployments, statefulsets and daemonsets: kubewire rollout status deployment/NAME');
      const { client } = connect(o.cluster);
      const deadline = Date.now() + parseDuration(o.timeout, '--timeout');
      let last = '';
      if (t.rt.kind !== 'Deployment') {
        for (;;) {
          const obj = await client.get<StatefulSet | DaemonSet>(t.rt, o.namespace ?? 'default', t.name);
          const line = rolloutLine(obj);
          if (line.done) return out(line.text);
          if (line.text !== last) out(line.text);
          last = line.text;
          if (Date.now() > deadline) throw new ClusterError(`timed out waiting for the rollout of ${t.rt.singular} "${t.name}"`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      for (;;) {
        const d = await client.get<Deployment>(t.rt, o.namespace ?? 'default', t.name);
        const want = d.spec.replicas ?? 1;
        const s = d.status ?? {};
        let line: string;
        if ((s.observedGeneration ?? 0) < (d.metadata.generation ?? 0)) line = `Waiting for deployment spec update to be observed...`;
        else if ((s.updatedReplicas ?? 0) < want) line = `Waiting for deployment "${t.name}" rollout to finish: ${s.updatedReplicas ?? 0} out of ${want} new replicas have been updated...`;
        else if ((s.replicas ?? 0) > (s.updatedReplicas ?? 0)) line = `Waiting for deployment "${t.name}" rollout to finish: ${(s.replicas ?? 0) - (s.updatedReplicas ?? 0)} old replicas are pending termination...`;
        else if ((s.availableReplicas ?? 0) < want) line = `Waiting for deployment "${t.name}" rollout to finish: ${s.availableReplicas ?? 0} of ${want} updated replicas are available...`;
        else return out(`deployment "${t.name}" successfully rolled out`);
        if (line !== last) out(line);
        last = line;
        if (Date.now() > deadline) throw new ClusterError(`timed out waiting for the rollout of deployment "${t.name}"`);
        await new Promise((r) => setTimeout(r, 100));
      }
    });

  const deploymentOf = async (o: { cluster: string; namespace?: string }, args: string[], verb: string) => {
    const t = target(args[0]!, args[1]);
    if (t.rt.kind !== 'Deployment' || !t.name) throw new ClusterError(`rollout ${verb} works on deployments: kubewire rollout ${verb} deployment/NAME`);
    const { client } = connect(o.cluster);
    const ns = o.namespace ?? 'default';
    const d = await client.get<Deployment>(t.rt, ns, t.name);
    const owned = (await client.list<ReplicaSet>(resource('replicasets'), ns)).items;
    return { client, d, owned, path: resourcePath(t.rt, ns, t.name) };
  };
  clusterOpt(nsOpt(rollout.command('history')))
    .description("a Deployment's revisions (its ReplicaSets)")
    .argument('<target...>', 'deployment/NAME or deployment NAME')
    .action(async (args: string[], o: { cluster: string; namespace?: string }) => {
      const { d, owned } = await deploymentOf(o, args, 'history');
      out(historyTable(d, owned));
    });
  clusterOpt(nsOpt(rollout.command('undo')))
    .description('roll a Deployment back to its previous revision, or --to-revision')
    .argument('<target...>', 'deployment/NAME or deployment NAME')
    .option('--to-revision <n>', 'the revision to go back to (0: the previous one)', '0')
    .action(async (args: string[], o: { cluster: string; namespace?: string; toRevision: string }) => {
      const { client, d, owned, path } = await deploymentOf(o, args, 'undo');
      const template = rollbackTemplate(d, owned, Number(o.toRevision));
      // A whole template, so that fields of the newer one that the old one lacks go (JSON merge patch would keep them).
      await client.call('PUT', path, { ...d, spec: { ...d.spec, template } });
      out(`deployment.apps/${d.metadata.name} rolled back`);
    });
  clusterOpt(nsOpt(rollout.command('restart')))
    .description("restart a Deployment's pods by a rollout (a new restartedAt annotation on its template)")
    .argument('<target...>', 'deployment/NAME or deployment NAME')
    .action(async (args: string[], o: { cluster: string; namespace?: string }) => {
      const { client, d, path } = await deploymentOf(o, args, 'restart');
      await client.call('PATCH', path, restartPatch(new Date()));
      out(`deployment.apps/${d.metadata.name} restarted`);
    });

  clusterOpt(nsOpt(program.command('exec')))
    .description("run a command in a pod's network namespace, a node's root namespace (--node) or the external client (--external)")
    .argument('[pod]', 'pod name (or pod/NAME)')
    .argument('[command...]', 'command and arguments, after --')
    .option('-c, --container <name>', 'container (all of a pod\'s containers share its network namespace)')
    .option('-i, --stdin', 'pass stdin to the command (always: it runs on your terminal)')
    .option('-t, --tty', 'accepted for kubectl habits: the command runs on your terminal')
    .option('--node <name>', "a node's root namespace instead of a pod")
    .option('--external', 'the client outside the cluster')
    .action(async (podArg: string | undefined, command: string[], o: { cluster: string; namespace?: string; container?: string; node?: string; external?: boolean }) => {
      const plan = loadCluster(o.cluster);
      // A cluster in a kernel of its own: resolved here (the API is relayed), the program started by the guest itself.
      const inKernel = !process.env.KUBEWIRE_GUEST && clusterKernel(o.cluster) !== undefined;
      if (o.external || o.node) {
        const argv = podArg ? [podArg, ...command] : command;
        let netns: string;
        if (o.external) netns = plan.externalNetns;
        else {
          const node = plan.nodes.find((n) => n.name === o.node);
          if (!node) throw new ClusterError(`node ${JSON.stringify(o.node)} not found in cluster ${o.cluster} (nodes: ${plan.nodes.map((n) => n.name).join(', ')})`);
          netns = node.netns;
        }
        // On a node, `iptables` is the iptables the node's rules are in (as kube-proxy's image's wrapper makes it).
        const tools = o.node ? nodeToolsDir(o.cluster, plan.spec.iptablesBackend) : undefined;
        const env = tools ? { PATH: `${tools}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` } : undefined;
        if (inKernel) {
          if (!argv.length) throw new ClusterError('you must specify at least one command (after --)');
          process.exitCode = await runProgramInKernel(o.cluster, { argv, env: env ?? {}, netns: netnsPath(netns), missing: `the namespace ${netns} is gone` }, process);
        } else process.exitCode = await runIn(netnsPath(netns), argv, env);
        return;
      }
      if (!podArg) throw new ClusterError('exec needs a pod name, --node NODE or --external');
      const name = podArg.replace(/^(pod|pods|po)\//, '');
      const { client } = connect(o.cluster);
      const ns = o.namespace ?? 'default';
      const pod = await client.get<Pod>(resource('pods'), ns, name).catch((e: unknown) => {
        if (isNotFound(e)) throw new ClusterError(`pods "${name}" not found in namespace ${ns}`);
        throw e;
      });
      const container = o.container ? pod.spec.containers.find((c) => c.name === o.container) : pod.spec.containers[0];
      if (!container) throw new ClusterError(`container ${o.container} not found in pod ${name} (containers: ${pod.spec.containers.map((c) => c.name).join(', ')})`);
      // As the container's user, as kubectl exec runs (securityContext.runAsUser/runAsGroup).
      const user = runAs(pod, container, passwdGroups(readFileSync('/etc/passwd', 'utf8')));
      const argv = command.length ? asUser(command, user) : command;
      const notRunning = `pod ${name} is not running (status ${pod.status?.phase ?? 'Pending'}${pod.spec.nodeName ? '' : ', not scheduled yet'})`;
      if (inKernel) {
        // Its namespace and records are the guest's: the guest checks the one and reads the other.
        const node = plan.nodes.find((n) => n.name === pod.spec.nodeName);
        const records = podDir(o.cluster, pod);
        if (!node || !records || pod.status?.phase !== 'Running') throw new ClusterError(notRunning);
        if (!command.length) throw new ClusterError('you must specify at least one command for the container (after --)');
        const env: Record<string, string> = { HOSTNAME: pod.spec.hostname ?? name, POD_NAME: name, POD_NAMESPACE: ns, POD_IP: pod.status.podIP ?? '' };
        for (const e of container.env ?? []) env[e.name] = e.value ?? '';
        const netns = netnsPath(podNetnsName(o.cluster, node.name, { namespace: ns, name }));
        const view = join(GUEST_STATE_DIR, o.cluster, relative(clusterDir(o.cluster), records), 'etc');
        process.exitCode = await runProgramInKernel(o.cluster, { argv, env, netns, missing: notRunning, view }, process);
        return;
      }
      const netns = podNetns(o.cluster, plan, pod);
      if (!netns || pod.status?.phase !== 'Running') throw new ClusterError(notRunning);
      // The pod's view of names, as its node agent wrote it (resolv.conf, hosts, hostname).
      const etc = join(podDir(o.cluster, pod)!, 'etc');
      const view = existsSync(join(etc, 'hostname')) ? { dir: etc, hostname: readFileSync(join(etc, 'hostname'), 'utf8').trim() } : undefined;
      const env: Record<string, string> = { HOSTNAME: view?.hostname ?? name, POD_NAME: name, POD_NAMESPACE: ns, POD_IP: pod.status.podIP ?? '' };
      for (const e of container.env ?? []) env[e.name] = e.value ?? '';
      process.exitCode = await runIn(netns, argv, env, view);
    });
}
