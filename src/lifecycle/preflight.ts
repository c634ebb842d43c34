// What a cluster on this machine's kernel needs of the host, checked before anything is made
// (as kubeadm's preflight checks do): the tools kubewire runs and the kernel features it
// relies on. Each one missing is one line naming it and how to get it; none is half-built
// around. A fresh machine lacks /run/netns too: that one kubewire makes itself, as `ip netns
// add` does (native/netns.c).

import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ClusterError } from '../cluster/cluster.ts';
import type { ClusterSpec } from '../cluster/plan.ts';
import { runCaptured } from '../supervisor/supervisor.ts';

/** What preflight looks at: which tools are on PATH, which kernel files exist. */
export interface HostFacts {
  tools: ReadonlySet<string>;
  /** br_netfilter is loaded: /proc/sys/net/bridge exists. */
  brNetfilter: boolean;
}

interface Requirement {
  /** Whether this cluster needs it. */
  needed: (spec: ClusterSpec) => boolean;
  /** Whether the host has it. */
  present: (facts: HostFacts, spec: ClusterSpec) => boolean;
  /** The line for a host without it. */
  missing: (spec: ClusterSpec) => string;
}

const tool = (name: string, pkg: string, why: string, needed: Requirement['needed'] = () => true): Requirement => ({
  needed,
  present: (f) => f.tools.has(name),
  missing: () => `${name} is not on PATH (${why}): apt-get install ${pkg}`,
});

const REQUIREMENTS: Requirement[] = [
  tool('ip', 'iproute2', 'links, addresses, routes and namespaces'),
  tool('bridge', 'iproute2', "the bridges' forwarding entries"),
  {
    needed: (s) => !s.iptablesBackend,
    present: (f) => f.tools.has('iptables-legacy-restore') || f.tools.has('iptables-nft-restore'),
    missing: () => "neither iptables-legacy-restore nor iptables-nft-restore is on PATH (the nodes' masquerade, portmap, kube-proxy's rules): apt-get install iptables",
  },
  {
    needed: (s) => !!s.iptablesBackend,
    present: (f, s) => f.tools.has(`iptables-${s.iptablesBackend}-restore`),
    missing: (s) => `iptables-${s.iptablesBackend}-restore is not on PATH (--iptables-backend ${s.iptablesBackend}): apt-get install iptables`,
  },
  tool('conntrack', 'conntrack', "kube-proxy clears a Service's stale UDP flows"),
  tool('nft', 'nftables', '--proxy-mode nftables programs the Services with it', (s) => s.proxyMode === 'nftables'),
  tool('ipset', 'ipset', 'IPVS mode matches Service addresses with ipsets', (s) => s.proxyMode === 'ipvs'),
  tool('ipvsadm', 'ipvsadm', 'IPVS mode: the virtual servers, as ipvsadm lists them', (s) => s.proxyMode === 'ipvs'),
  {
    needed: () => true,
    present: (f) => f.brNetfilter,
    missing: () => "the kernel's br_netfilter is not loaded (/proc/sys/net/bridge is missing), so traffic bridged between pods of a node never meets the Services' rules: modprobe br_netfilter",
  },
];

/** The lines naming what this host lacks for a cluster of `spec`, one each (pure). */
export function missingOnHost(spec: ClusterSpec, facts: HostFacts): string[] {
  return REQUIREMENTS.filter((r) => r.needed(spec) && !r.present(facts, spec)).map((r) => r.missing(spec));
}

/** Every tool any requirement names, for readHostFacts. */
const TOOLS = ['ip', 'bridge', 'iptables-legacy-restore', 'iptables-nft-restore', 'conntrack', 'nft', 'ipset', 'ipvsadm'];

/** The executables among `names` on `path` (no process started: a look at each directory). */
export function toolsOnPath(names: string[], path = process.env.PATH ?? ''): Set<string> {
  const dirs = path.split(delimiter).filter(Boolean);
  const found = new Set<string>();
  for (const name of names) {
    for (const dir of dirs) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        found.add(name);
        break;
      } catch {
        // not here
      }
    }
  }
  return found;
}

/** What the host has now; br_netfilter loaded first if it is a module not yet loaded (as Docker and kubeadm's guides have it). */
export async function readHostFacts(): Promise<HostFacts> {
  const tools = toolsOnPath(TOOLS);
  if (!existsSync('/proc/sys/net/bridge')) await runCaptured(['modprobe', 'br_netfilter']).catch(() => undefined);
  return { tools, brNetfilter: existsSync('/proc/sys/net/bridge') };
}

/** Refuses, naming each missing piece on its own line, a host that cannot run a cluster of `spec`. */
export async function preflight(spec: ClusterSpec): Promise<void> {
  const lines = missingOnHost(spec, await readHostFacts());
  if (lines.length) throw new ClusterError(`this machine lacks what cluster ${JSON.stringify(spec.name)} needs:\n${lines.map((l) => `  - ${l}`).join('\n')}`);
}
