// The VPC (vpc mode): what EC2 is to the AWS VPC CNI. It gives nodes secondary addresses of
// its subnet and takes them back, records who holds what (vpc.json in the cluster's
// directory), and programs the network namespace so that the fabric knows where each
// address lives: a neighbour entry on the underlay bridge, which answers ARP for it with the
// holder's MAC. It also checks sources as EC2 does (source-check.ts): its allowed addresses
// change with each assignment, in one transaction. One writer (the daemon); calls are serialised.

import { existsSync, readFileSync } from 'node:fs';
import type { Netns, NetOp } from '../dataplane/port.ts';
import { fabricBase, fabricOps, secondaryEntries, UNDERLAY, VPC, type ClusterPlan, type NodePlan } from '../cluster/plan.ts';
import { writeJsonAtomically } from '../state/files.ts';
import { compareIPs, freeSecondaries, type VpcRecord } from './pool.ts';
import { Serial } from './serial.ts';
import { allowScript, sourceCheckScript, sourceChecks } from './source-check.ts';

export class VpcError extends Error {
  override name = 'VpcError';
}

export class Vpc {
  private record: VpcRecord = {};
  /** Why the source check is off (a kernel without nf_tables for bridges: UML's), or undefined when it is on. */
  private checkOff?: string;
  private readonly serial = new Serial();

  constructor(
    private readonly plan: ClusterPlan,
    private readonly network: Netns,
    private readonly recordPath: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Loads the record and puts every entry it holds into the fabric again (a restart, or a fabric someone changed). */
  async start(): Promise<void> {
    if (existsSync(this.recordPath)) this.record = JSON.parse(readFileSync(this.recordPath, 'utf8')) as VpcRecord;
    const entries = [...fabricBase(this.plan), ...this.plan.nodes.flatMap((n) => secondaryEntries(this.plan, n, this.addressesOf(n.name)))];
    await this.network.apply(fabricOps(entries));
    this.checkOff = undefined;
    await this.programSourceCheck().catch((e: Error) => {
      this.checkOff = e.message.split('\n')[0];
      this.log(`vpc: the source check is off, frames of any source cross the VPC: ${this.checkOff}`);
    });
  }

  /** The source check, all of it, from the record (a start, or mending a change that failed). */
  private async programSourceCheck(): Promise<void> {
    if (!this.checkOff) await this.network.nft(sourceCheckScript(sourceChecks(this.plan, this.record)));
  }

  /** One change of a node's allowed sources; when it fails (an element already gone), the whole check from the record. */
  private async changeSourceCheck(node: NodePlan, verb: 'add' | 'delete', addresses: string[]): Promise<void> {
    if (this.checkOff) return;
    await this.network
      .nft(allowScript(node.underlayPort, verb, addresses))
      .catch(() => this.programSourceCheck())
      .catch((e: Error) => this.log(`vpc: the source check of ${node.name}: ${e.message}`));
  }

  addressesOf(node: string): string[] {
    return Object.keys(this.record).filter((a) => this.record[a] === node).sort(compareIPs);
  }

  /** Gives `node` up to `count` more addresses (AssignPrivateIpAddresses); the fabric knows them before they are returned. */
  assign(node: NodePlan, count: number): Promise<string[]> {
    return this.serial.run(async () => {
      const addresses = freeSecondaries(this.record, VPC.firstSecondary, VPC.lastSecondary, count);
      if (!addresses.length) throw new VpcError(`the VPC ${UNDERLAY.subnet} has no free address left for ${node.name}`);
      for (const a of addresses) this.record[a] = node.name;
      // Recorded first: a crash before the fabric is programmed is mended by start().
      this.save();
      await this.network.apply(fabricOps(secondaryEntries(this.plan, node, addresses)));
      // Allowed as sources before a pod can have one: its first packet must not be dropped.
      await this.changeSourceCheck(node, 'add', addresses);
      this.log(`vpc: ${node.name} holds ${addresses.length} more address${addresses.length === 1 ? '' : 'es'} (${span(addresses)})`);
      return addresses;
    });
  }

  /** Takes addresses back from `node` (UnassignPrivateIpAddresses): out of the fabric first, then out of the record. */
  unassign(node: NodePlan, addresses: string[]): Promise<void> {
    return this.serial.run(async () => {
      const mine = addresses.filter((a) => this.record[a] === node.name);
      if (!mine.length) return;
      await this.network.apply(mine.map((ip): NetOp => ({ op: 'neigh-del', dev: UNDERLAY.bridge, ip }))).catch((e: Error) => this.log(`vpc: removing ${span(mine)} from the fabric: ${e.message}`));
      for (const a of mine) delete this.record[a];
      this.save();
      // No longer the node's: a frame from it with one of them as source is dropped from now on.
      await this.changeSourceCheck(node, 'delete', mine);
      this.log(`vpc: ${node.name} gave back ${mine.length} address${mine.length === 1 ? '' : 'es'} (${span(mine)})`);
    });
  }

  private save(): void {
    writeJsonAtomically(this.recordPath, this.record, 0o600);
  }
}

function span(addresses: string[]): string {
  return addresses.length <= 3 ? addresses.join(', ') : `${addresses[0]} … ${addresses[addresses.length - 1]}`;
}
