// `kubewire cni install`: what flannel's and Cilium's install-cni init containers do on a
// node. The plugins (the C shim, or Node.js wrappers) into the CNI bin directory; with a node
// name, the node's conflist into the CNI conf directory, on the podCIDRs of its Node object
// read through a kubeconfig (client certificate, token or in-cluster service account).

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { DEFAULT_SERVER_SOCKET, ensureWritableDir, installConflist, installPlugins, nodeNetworkConflist } from '../cni/install.ts';
import { kubeconfigPaths } from '../identity/kubeconfig.ts';

interface InstallFlags {
  binDir: string;
  dir?: string;
  confDir: string;
  kubeconfig?: string;
  nodeName?: string;
  plugin: string;
  portmap: boolean;
  loopback?: boolean;
  mtu?: string;
  ipMasq?: boolean;
  dataDir?: string;
  socket: string;
  shim: boolean;
}

export function registerInstall(cni: Command): void {
  cni
    .command('install')
    .description('install the CNI plugins into the bin directory and, for a node (--node-name or $NODE_NAME), its conflist on the podCIDR of its Node object, as flannel\'s install-cni does')
    .option('--bin-dir <dir>', 'where the plugins go', '/opt/cni/bin')
    .option('--dir <dir>', 'the same as --bin-dir (older name)')
    .option('--conf-dir <dir>', 'where the node\'s conflist goes (10-kubewire.conflist)', '/etc/cni/net.d')
    .option('--kubeconfig <file>', 'kubeconfig to read the Node with (default: $KUBECONFIG, ~/.kube/config, or the Pod\'s service account)')
    .option('--node-name <name>', 'the node this runs on (default: $NODE_NAME); without one, no conflist is written', process.env.NODE_NAME)
    .option('--plugin <type>', 'the pods\' interface: bridge (cni0, as flannel) or ptp (a routed pair, as kindnet)', 'bridge')
    .option('--no-portmap', 'leave portmap (hostPort) out of the conflist')
    .option('--loopback', 'also write 99-loopback.conf (runtimes that do not set lo up themselves, as CRI-O)')
    .option('--mtu <bytes>', 'MTU of the pods\' interfaces (default: the kernel\'s)')
    .option('--ip-masq', 'masquerade pod traffic leaving the pod network (off: kube-proxy or the node does it)')
    .option('--data-dir <dir>', 'host-local\'s state directory (default /var/lib/cni/networks)')
    .option('--socket <path>', 'the plugin server\'s socket the shims use (kubewire cni server)', DEFAULT_SERVER_SOCKET)
    .option('--no-shim', 'install Node.js wrappers (a Node.js start per call) instead of the C shim')
    .action(async (flags: InstallFlags) => {
      if (flags.plugin !== 'bridge' && flags.plugin !== 'ptp') throw new Error(`--plugin ${JSON.stringify(flags.plugin)}: must be bridge or ptp`);
      const mtu = flags.mtu === undefined ? undefined : Number(flags.mtu);
      if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= 576 && mtu <= 65535)) throw new Error(`--mtu ${flags.mtu}: must be a whole number of bytes from 576 to 65535`);
      // The Node first: a node without a podCIDR leaves nothing half-installed.
      const podCIDRs = flags.nodeName ? await nodePodCIDRs(flags.nodeName, flags.kubeconfig) : undefined;
      const binDir = flags.dir ?? flags.binDir;
      if (podCIDRs) ensureWritableDir(flags.confDir);
      for (const path of installPlugins({ dir: binDir, shim: flags.shim ? undefined : false, socket: flags.shim ? flags.socket : undefined })) process.stdout.write(`installed ${path}\n`);
      if (!podCIDRs) return;
      const conflist = nodeNetworkConflist({ podCIDRs, plugin: flags.plugin, portmap: flags.portmap, mtu, ipMasq: flags.ipMasq, dataDir: flags.dataDir });
      const [main, ...others] = installConflist(flags.confDir, conflist, flags.loopback);
      process.stdout.write(`wrote ${main} (podCIDR ${podCIDRs.join(',')})\n`);
      for (const path of others) process.stdout.write(`wrote ${path}\n`);
    });
}

/** The podCIDRs of Node `name` (spec.podCIDRs, else spec.podCIDR); one clear error otherwise. */
export async function nodePodCIDRs(name: string, kubeconfig: string | undefined): Promise<string[]> {
  const node = (await getNode(name, kubeconfig)) as { spec?: { podCIDR?: string; podCIDRs?: string[] } };
  const cidrs = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
  if (!cidrs.length) throw new Error(`node ${JSON.stringify(name)} has no podCIDR (spec.podCIDR is empty): the controller manager assigns one with --allocate-node-cidrs and --cluster-cidr`);
  return cidrs;
}

interface Connection {
  server: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  insecure?: boolean;
  source: string;
}

/** GET /api/v1/nodes/NAME with the kubeconfig's credentials. */
async function getNode(name: string, kubeconfig: string | undefined): Promise<unknown> {
  const c = connection(kubeconfig);
  // undici only here: every kubewire command loads this module, few of them fetch a Node.
  // Bundled, a dynamic import of the CommonJS undici is its module.exports under `default`.
  const mod = await import('undici');
  const { Agent, request } = 'Agent' in mod && typeof mod.Agent === 'function' ? mod : (mod as unknown as { default: typeof mod }).default;
  const dispatcher = new Agent({ connect: { ca: c.ca, cert: c.cert, key: c.key, rejectUnauthorized: !c.insecure }, headersTimeout: 30_000, bodyTimeout: 30_000 });
  try {
    let res;
    try {
      res = await request(`${c.server.replace(/\/$/, '')}/api/v1/nodes/${encodeURIComponent(name)}`, { dispatcher, headers: { accept: 'application/json', 'user-agent': 'kubewire-cni-install', ...(c.token ? { authorization: `Bearer ${c.token}` } : {}) } });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
      const why = err.cause?.code ?? err.code ?? '';
      throw new Error(`cannot reach the API server at ${c.server} (${c.source}): ${why ? `${why} ` : ''}${(err.cause ?? err).message}`);
    }
    const text = await res.body.text();
    if (res.statusCode === 404) throw new Error(`node ${JSON.stringify(name)} not found on ${c.server}: is --node-name (or $NODE_NAME) this node's name as kubectl get nodes shows it?`);
    if (res.statusCode >= 400) {
      let message = text.trim();
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        // not a Status
      }
      throw new Error(`reading node ${JSON.stringify(name)} from ${c.server}: HTTP ${res.statusCode}: ${message.split('\n')[0]}`);
    }
    return JSON.parse(text);
  } finally {
    await dispatcher.close();
  }
}

/** The server and credentials of the kubeconfig's current context, or of the Pod's service account. */
function connection(explicit: string | undefined): Connection {
  const env = process.env;
  const files = kubeconfigPaths(explicit, env, homedir());
  let file: string | undefined;
  for (const f of files) {
    try {
      readFileSync(f);
      file = f;
      break;
    } catch (e) {
      if (explicit) throw new Error(`kubeconfig ${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  }
  if (!file) {
    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    if (!env.KUBERNETES_SERVICE_HOST) throw new Error(`no kubeconfig (${files.join(':')} does not exist) and not in a Pod: give --kubeconfig FILE`);
    const host = env.KUBERNETES_SERVICE_HOST.includes(':') ? `[${env.KUBERNETES_SERVICE_HOST}]` : env.KUBERNETES_SERVICE_HOST;
    return { server: `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`, ca: readFileSync(`${sa}/ca.crt`, 'utf8'), token: readFileSync(`${sa}/token`, 'utf8').trim(), source: 'in-cluster service account' };
  }
  let doc: any;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`kubeconfig ${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const named = (section: string, n: unknown): any => (Array.isArray(doc?.[section]) ? doc[section].find((x: any) => x?.name === n) : undefined);
  const contextName = doc?.['current-context'];
  const context = named('contexts', contextName)?.context;
  if (!context) throw new Error(`kubeconfig ${file}: current-context ${JSON.stringify(contextName ?? '')} is not one of its contexts`);
  const cluster = named('clusters', context.cluster)?.cluster;
  if (!cluster?.server) throw new Error(`kubeconfig ${file}: cluster ${JSON.stringify(context.cluster)} has no server`);
  const user = named('users', context.user)?.user ?? {};
  const base = dirname(file);
  const material = (data: unknown, path: unknown, what: string): string | undefined => {
    if (typeof data === 'string' && data) return Buffer.from(data, 'base64').toString('utf8');
    if (typeof path !== 'string' || !path) return undefined;
    const p = isAbsolute(path) ? path : join(base, path);
    try {
      return readFileSync(p, 'utf8');
    } catch {
      throw new Error(`kubeconfig ${file}: ${what} ${p} cannot be read`);
    }
  };
  return {
    server: cluster.server,
    ca: material(cluster['certificate-authority-data'], cluster['certificate-authority'], 'certificate-authority'),
    cert: material(user['client-certificate-data'], user['client-certificate'], 'client-certificate'),
    key: material(user['client-key-data'], user['client-key'], 'client-key'),
    token: typeof user.token === 'string' ? user.token : undefined,
    insecure: cluster['insecure-skip-tls-verify'] === true,
    source: `kubeconfig ${file}`,
  };
}
