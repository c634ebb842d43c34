// A node's NetworkPolicy enforcer as the daemon runs it: the backend its kernel takes, chosen
// at the first sync by asking the kernel (nftables's own inet table; iptables + ipset where the
// kernel has no nf_tables, as the user-mode Linux one), fed through the in-process client.
// KUBEWIRE_NETPOL_BACKEND=iptables|nftables forces one (the e2e runs the iptables one on a
// kernel that has both).

import type { Api } from '../apiserver/api.ts';
import { LocalClient } from '../apiserver/objects.ts';
import type { IptablesBackend, Netns } from '../dataplane/port.ts';
import { PolicyEnforcer, type NetpolBackend, type NetpolProxyInfo } from './enforcer.ts';
import { IptablesPolicyBackend } from './iptables.ts';
import type { CompiledNode } from './model.ts';
import { NftablesPolicyBackend, nftRemoval } from './nftables.ts';

/** nftables where the kernel makes an inet table, else iptables + ipset; decided once. */
export class KernelPolicyBackend implements NetpolBackend {
  private chosen?: NetpolBackend;

  constructor(private readonly netns: Netns, private readonly iptables: IptablesBackend | undefined, private readonly forced?: 'nftables' | 'iptables', private readonly proxy: NetpolProxyInfo = {}) {}

  get name(): 'nftables' | 'iptables' {
    return this.chosen?.name ?? 'nftables';
  }

  private async pick(): Promise<NetpolBackend> {
    if (!this.chosen) {
      // Listing is not enough: user-mode Linux's kernel lists inet tables but refuses to make one
      // ("Operation not supported"), so the probe makes the table and takes it away again.
      const nft = this.forced ? this.forced === 'nftables' : await this.netns.nft(nftRemoval()).then(() => true, () => false);
      this.chosen = nft ? new NftablesPolicyBackend(this.netns, this.proxy) : new IptablesPolicyBackend(this.netns, this.iptables, this.proxy);
    }
    return this.chosen;
  }

  async apply(node: CompiledNode): Promise<Record<string, number>> {
    return (await this.pick()).apply(node);
  }

  async remove(): Promise<void> {
    await (await this.pick()).remove();
  }

  async intact(): Promise<boolean> {
    return (await this.pick()).intact();
  }
}

export function nodePolicy(o: { api: Api; nodeName: string; netns: Netns; spec: { iptablesBackend?: IptablesBackend; proxyMode?: string; serviceCIDR: string }; log: (line: string) => void }): PolicyEnforcer {
  const env = process.env.KUBEWIRE_NETPOL_BACKEND;
  const forced = env === 'iptables' || env === 'nftables' ? env : undefined;
  const proxy: NetpolProxyInfo = o.spec.proxyMode === 'ipvs' ? { ipvs: true, serviceCIDR: o.spec.serviceCIDR } : {};
  return new PolicyEnforcer({ client: new LocalClient(o.api), nodeName: o.nodeName, backend: new KernelPolicyBackend(o.netns, o.spec.iptablesBackend, forced, proxy), log: o.log });
}
