// `kubewire trace FROM TO`: one real probe's path, hop by hop, and `trace --matrix`.

import type { Command } from 'commander';
import { RESOURCES } from '../api/resources.ts';
import type { Ingress, Namespace, NetworkPolicy, Pod, Service } from '../api/types.ts';
import { ClusterError } from '../cluster/cluster.ts';
import { linux } from '../dataplane/linux/host.ts';
import type { Trace } from '../trace/explain.ts';
import { renderTrace, table, traceJson } from '../trace/render.ts';
import type { ClusterView, Matrix } from '../trace/trace.ts';
import { agrees, type Expectation } from '../trace/policy.ts';
import { connect, defaultCluster } from './kubectl.ts';

const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

const MARK: Record<string, string> = { delivered: '.', answered: 'A', dropped: 'X', rejected: 'R' };
const EXPECTED_MARK: Record<Expectation, string> = { allowed: '.', blocked: 'X', mixed: '~', undefined: '-' };

/**
 * The probed table (what the kernel did), and beside it, when the cluster has NetworkPolicies,
 * the expected one (what the policies mean, computed by the model as Cyclonus does); a cell where
 * they disagree is marked `!` in both and listed with both reasons.
 */
export function renderMatrix(m: Matrix): string {
  const key = (s: string, t: string) => `${s}\0${t}`;
  const probed = new Map(m.cells.map((c) => [key(c.from, c.to), c]));
  const expected = new Map((m.expected ?? []).map((c) => [key(c.from, c.to), c]));
  const differs = (s: string, t: string) => {
    const e = expected.get(key(s, t));
    return e !== undefined && !agrees(probed.get(key(s, t))?.verdict, e.expected);
  };
  const mark = (text: string, bad: boolean) => (bad ? `${text}!` : text);
  const numbers = m.targets.map((_, i) => String(i + 1));
  const header = ['FROM \\ TO', ...numbers, ...(m.expected ? ['|', ...numbers] : [])];
  const rows = m.sources.map((s) => [
    s,
    ...m.targets.map((t) => mark(MARK[probed.get(key(s, t))?.verdict ?? ''] ?? '?', differs(s, t))),
    ...(m.expected ? ['|', ...m.targets.map((t) => mark(EXPECTED_MARK[expected.get(key(s, t))?.expected ?? 'undefined'], differs(s, t)))] : []),
  ]);
  const legend = m.targets.map((t, i) => `${i + 1}: ${t}`).join('   ');
  const out = [table([header, ...rows]), ''];
  if (m.expected) out.push('left of |: probed (what the kernel did)   right of |: expected (what the NetworkPolicies say, as the model computes them)');
  out.push(legend, '. delivered/allowed   X dropped/blocked   R rejected');
  if (m.expected) out.push('~ some backends allowed, some not   - not defined by NetworkPolicy (ICMP, a pod to itself)   ! the kernel and the policies disagree');
  const failures = m.cells.filter((c) => c.verdict !== 'delivered' && !differs(c.from, c.to)).map((c) => `${c.from} → ${c.to}: ${c.verdict}: ${c.reason}`);
  if (failures.length) out.push('', ...failures);
  const disagreements = m.cells.filter((c) => differs(c.from, c.to)).map((c) => {
    const e = expected.get(key(c.from, c.to))!;
    return `${c.from} → ${c.to}: the policies say ${e.expected} (${e.reason}), but the probe was ${c.verdict}: ${c.reason}`;
  });
  if (disagreements.length) out.push('', `${disagreements.length} cell${disagreements.length === 1 ? '' : 's'} where the kernel and the policies disagree:`, ...disagreements);
  return out.join('\n');
}

async function clusterView(cluster: string): Promise<ClusterView> {
  const { client, plan } = connect(cluster);
  const rt = (kind: string) => RESOURCES.find((r) => r.kind === kind)!;
  const [pods, services, ingresses, policies, namespaces] = await Promise.all([
    client.list<Pod>(rt('Pod'), undefined),
    client.list<Service>(rt('Service'), undefined),
    client.list<Ingress>(rt('Ingress'), undefined),
    client.list<NetworkPolicy>(rt('NetworkPolicy'), undefined),
    client.list<Namespace>(rt('Namespace'), undefined),
  ]);
  return { plan, pods: pods.items, services: services.items, ingresses: ingresses.items, policies: policies.items, namespaces: namespaces.items };
}

export function registerTraceCommands(program: Command): void {
  program
    .command('trace')
    .description('send a real probe and show its path hop by hop: L2, routes, netfilter rules, NAT, conntrack, and the verdict')
    .argument('[from]', 'pod/NAME, node/NAME or external')
    .argument('[to]', 'pod/NAME, service/NAME, a Service\'s DNS name (web, web.shop.svc.cluster.local), IP, IP:PORT (a NodePort at a node), or http(s)://HOST/PATH through the ingress')
    .option('--port <port>', 'destination port (a Service port, or the pod port); the first one when not given')
    .option('--protocol <protocol>', 'tcp | udp | icmp')
    .option('--node <name>', 'for a URL: the node whose ingress controller takes it (the first node by default)')
    .option('--matrix', 'every pod of the namespace (or of several: -n x,y,z) to every pod and Service port, as a table of verdicts; beside it the table the NetworkPolicies expect')
    .option('--timeout <seconds>', 'how long a probe waits for its answer', '1')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-o, --output <format>', 'json')
    .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
    .action(async (from: string | undefined, to: string | undefined, o: { port?: string; protocol?: string; node?: string; matrix?: boolean; timeout: string; namespace: string; output?: string; cluster: string }) => {
      if (o.output !== undefined && o.output !== 'json') throw new ClusterError(`-o ${JSON.stringify(o.output)}: trace prints a table, or json with -o json`);
      const timeoutSeconds = Number(o.timeout);
      if (!(timeoutSeconds > 0 && timeoutSeconds <= 30)) throw new ClusterError(`--timeout ${JSON.stringify(o.timeout)}: must be seconds, more than 0 and at most 30`);
      // Loaded by this command only: every kubewire process (the DNS server, the ingress controller) starts from this bundle.
      const { parseTraceRequest, traceMatrix, traceOne, TraceError, Interrupted } = await import('../trace/trace.ts');
      // Ctrl-C (or a TERM) ends the trace, which removes what it had put in place before the process exits.
      const stop = new AbortController();
      const interrupt = () => stop.abort();
      process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
      try {
        if (o.matrix) {
          if (from || to) throw new ClusterError('--matrix takes no FROM or TO: it traces every pod of the namespace (-n) to every pod and Service port');
          const view = await clusterView(o.cluster);
          const m = await traceMatrix(linux, view, o.namespace, { timeoutSeconds, signal: stop.signal });
          return out(o.output === 'json' ? traceJson(m) : renderMatrix(m));
        }
        if (!from || !to) throw new ClusterError('trace needs FROM and TO, e.g. kubewire trace pod/client service/web (or --matrix)');
        if (o.namespace.includes(',')) throw new ClusterError(`-n ${o.namespace}: one namespace for a single trace (several only with --matrix)`);
        // Checked before the cluster is asked anything: the same checks as the page's.
        const req = parseTraceRequest({ from, to, namespace: o.namespace, port: o.port, protocol: o.protocol, node: o.node });
        const view = await clusterView(o.cluster);
        const t = await traceOne(linux, view, req, { timeoutSeconds, signal: stop.signal });
        if (stop.signal.aborted) throw new Interrupted('the trace was interrupted; what it had put in place is removed');
        out(o.output === 'json' ? traceJson(t) : renderTrace(t));
      } catch (e) {
        if (e instanceof TraceError) throw new ClusterError(e.message);
        if (e instanceof Interrupted) {
          process.stderr.write(`${e.message}\n`);
          process.exit(130);
        }
        throw e;
      } finally {
        process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
      }
    });
}
