// `kubewire demo` (the README's first command): a two-node cluster, a Deployment spread
// over both nodes, a request from a pod on node 1 to a pod on node 2 whose answer shows
// the client's own pod IP (no NAT), then the same pods reached from outside the cluster
// through the Service's ClusterIP and the ingress controller. Every step is a kubewire
// command the user can type; the cluster stays up for exploring.

import { existsSync } from 'node:fs';
import type { Pod } from '../api/types.ts';
import { daemonPid } from '../daemon/process.ts';
import { cliEnv, cliPath, clusterDir } from '../state/paths.ts';
import { runCaptured } from '../supervisor/supervisor.ts';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string): void => void process.stdout.write(`${s}\n`);

const DEMO = `apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: demo
spec:
  replicas: 4
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      containers:
      - name: hello
        image: hello   # no image is pulled: a container with ports and no command runs kubewire's built-in HTTP server
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: demo
spec:
  selector: {app: hello}
  ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: hello
  namespace: demo
spec:
  rules:
  - host: hello.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: hello, port: {number: 80}}}}
`;

/** Runs `kubewire ARGS` as the user would, echoing the command and its output. */
async function kw(args: string[], opts: { input?: string; quiet?: boolean } = {}): Promise<string> {
  if (!opts.quiet) say(`\n${bold(`$ kubewire ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`)}`);
  const r = await runCaptured([process.execPath, cliPath(), ...args], { env: cliEnv(), input: opts.input, inheritStderr: true, onStdout: opts.quiet ? undefined : (c) => process.stdout.write(c) });
  if (r.code !== 0) throw new Error(`kubewire ${args.join(' ')} failed (exit code ${r.code ?? r.signal})`);
  return r.stdout;
}

export async function demoCluster(cluster: string): Promise<void> {
  const c = ['--cluster', cluster];
  say(bold(`kubewire demo: Kubernetes host networking on this machine's kernel (cluster "${cluster}")`));
  if (existsSync(clusterDir(cluster)) && daemonPid(cluster)) say(`cluster ${cluster} is already up: the demo uses it`);
  else await kw(['up', '--nodes', '2', ...c]);
  await kw(['get', 'nodes', '-o', 'wide', ...c]);
  say('Each node owns a podCIDR cut from 10.244.0.0/16; the underlay router holds one route per podCIDR.');

  await kw(['apply', '-f', '-', ...c], { input: DEMO });
  await kw(['rollout', 'status', 'deployment/hello', '-n', 'demo', ...c]);
  await kw(['get', 'pods', '-n', 'demo', '-o', 'wide', ...c]);

  const pods = (JSON.parse(await kw(['get', 'pods', '-n', 'demo', '-o', 'json', ...c], { quiet: true })) as { items: Pod[] }).items;
  const nodes = [...new Set(pods.map((p) => p.spec.nodeName!))].sort();
  const client = pods.find((p) => p.spec.nodeName === nodes[0])!;
  const server = pods.find((p) => p.spec.nodeName === nodes[1]) ?? pods.find((p) => p !== client)!;
  say(`\nA request from ${client.metadata.name} (${client.status!.podIP}, on ${client.spec.nodeName}) to ${server.metadata.name} (${server.status!.podIP}, on ${server.spec.nodeName}):`);
  const answer = await kw(['exec', '-n', 'demo', client.metadata.name, ...c, '--', 'curl', '-s', '-m', '5', `http://${server.status!.podIP}/`]);
  const seen = answer.match(/^client: ([\d.]+):\d+$/m)?.[1];
  say(seen === client.status!.podIP
    ? `\n${bold('No NAT:')} the server saw the client's own pod IP ${seen}. The packet went pod eth0 -> veth -> cni0 -> node eth0 -> router -> node eth0 -> cni0 -> veth -> pod.`
    : `\nthe server saw ${seen ?? 'nothing'} while the client is ${client.status!.podIP}: something NATs pod traffic`);

  const svc = JSON.parse(await kw(['get', 'service', 'hello', '-n', 'demo', '-o', 'json', ...c], { quiet: true })) as { spec: { clusterIP: string } };
  say(`\nThe Service hello has the virtual IP ${svc.spec.clusterIP}; every node's proxy load-balances it (iptables DNAT to a pod):`);
  await kw(['exec', '-n', 'demo', client.metadata.name, ...c, '--', 'curl', '-s', '-m', '5', `http://${svc.spec.clusterIP}/`]);
  const nodeIPs = (JSON.parse(await kw(['get', 'nodes', '-o', 'json', ...c], { quiet: true })) as { items: Array<{ status: { addresses: Array<{ type: string; address: string }> } }> }).items.map((n) => n.status.addresses.find((a) => a.type === 'InternalIP')!.address);
  say(`\nFrom outside the cluster (the external namespace) through the ingress controller on ${nodes[0]} (${nodeIPs[0]}:80), by host name:`);
  await kw(['exec', '--external', ...c, '--', 'curl', '-s', '-m', '5', '--fail', '--retry', '20', '--retry-all-errors', '--retry-delay', '0', '-H', 'Host: hello.example.com', `http://${nodeIPs[0]}/`]);
  await kw(['get', 'ingress', '-n', 'demo', ...c]);

  await kw(['exec', '-n', 'demo', client.metadata.name, ...c, '--', 'ip', 'route']);
  await kw(['exec', '--node', nodes[0]!, ...c, '--', 'bridge', 'fdb', 'show', 'br', 'cni0', 'dynamic']);
  say('cni0 learnt the MAC of each pod behind its veth port: the bridge of the seed, in the kernel.');
  say(`\n${bold('Explore:')}
  kubewire describe node ${nodes[0]} ${c.join(' ')}        # podCIDR, cni0, veth pairs, FDB, ARP, routes
  kubewire describe pod ${client.metadata.name} -n demo ${c.join(' ')}
  kubewire describe service hello -n demo ${c.join(' ')}       # endpoints by node, and the iptables rules carrying it
  kubewire describe ingress hello -n demo ${c.join(' ')}
  kubewire exec -n demo ${client.metadata.name} ${c.join(' ')} -- ping -c1 ${server.status!.podIP}
  kubewire scale deployment/hello --replicas=8 -n demo ${c.join(' ')}
  kubewire logs ${server.metadata.name} -n demo ${c.join(' ')}
  kubewire down ${c.join(' ')}                              # removes everything`);
}
