// A node's NetworkPolicy enforcer as the daemon runs it: the backend its kernel takes
// (nftables's own inet table; iptables + ipset where the kernel has no nf_tables, as the
// user-mode Linux one with the legacy iptables backend), fed through the in-process client.

import type { Api } from '../apiserver/api.ts';
import { LocalClient } from '../apiserver/objects.ts';
import type { IptablesBackend, Netns } from '../dataplane/port.ts';
import { PolicyEnforcer, type NetpolBackend } from './enforcer.ts';
import { IptablesPolicyBackend } from './iptables.ts';
import { NftablesPolicyBackend } from './nftables.ts';

/** nftables, unless the cluster's iptables is the legacy one (a kernel without nf_tables). */
export function policyBackend(netns: Netns, spec: { iptablesBackend?: IptablesBackend }): NetpolBackend {
  return spec.iptablesBackend === 'legacy' ? new IptablesPolicyBackend(netns, 'legacy') : new NftablesPolicyBackend(netns);
}

export function nodePolicy(o: { api: Api; nodeName: string; netns: Netns; spec: { iptablesBackend?: IptablesBackend }; log: (line: string) => void }): PolicyEnforcer {
  return new PolicyEnforcer({ client: new LocalClient(o.api), nodeName: o.nodeName, backend: policyBackend(o.netns, o.spec), log: o.log });
}
