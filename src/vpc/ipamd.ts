// A node's ipamd (vpc mode), as the AWS VPC CNI's: it holds the node's pool of VPC
// addresses, hands them to pods through the `vpc` IPAM plugin (over a unix socket), and keeps
// the pool at its warm targets by asking the VPC for more or giving some back. A freed
// address cools down (30 s by default) before another pod gets it. Its assignments are checkpointed
// (ipamd.json) before it answers, so a kill -9 loses none.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { NodePlan } from '../cluster/plan.ts';
import { VPC, UNDERLAY } from '../cluster/plan.ts';
import type { IpamdReply, IpamdRequest } from '../cni/ipam/vpc/plugin.ts';
import { writeJsonAtomically } from '../state/files.ts';
import { addressOf, assign, poolChange, toRelease, usedCount, withAddresses, withoutAddresses, type Holder, type Pool, type PoolTargets } from './pool.ts';
import type { Vpc } from './vpc.ts';
import { Serial } from './serial.ts';

const SUBNET_BITS = UNDERLAY.subnet.split('/')[1];

export class IpamdError extends Error {
  override name = 'IpamdError';
}

export interface IpamdOptions {
  node: NodePlan;
  socketPath: string;
  /** Where the pool is checkpointed. */
  checkpointPath: string;
  vpc: Vpc;
  targets: PoolTargets;
  /** Seconds a freed address cools down before it is given again (IP_COOLDOWN_PERIOD). */
  cooldownSeconds: number;
  log: (line: string) => void;
}

export class Ipamd {
  private pool: Pool = {};
  private server?: Server;
  private readonly serial = new Serial();
  private reconcileQueued = false;
  private stopped = false;
  /** Addresses freed lately, and when they may be given again (ms). */
  private readonly coolingUntil = new Map<string, number>();
  private cooldownTimer?: NodeJS.Timeout;

  constructor(private readonly o: IpamdOptions) {}

  /** The pool as it is: every address the node holds, and what each is given to. */
  snapshot(): Pool {
    return { ...this.pool };
  }

  /** Loads the checkpoint against what the VPC says the node holds, fills the pool to its targets, then listens. */
  async start(): Promise<void> {
    const held = this.o.vpc.addressesOf(this.o.node.name);
    const saved: Pool = existsSync(this.o.checkpointPath) ? (JSON.parse(readFileSync(this.o.checkpointPath, 'utf8')) as Pool) : {};
    // The VPC is the authority on what the node holds; the checkpoint on who uses it.
    this.pool = withAddresses({}, held);
    for (const a of held) if (saved[a]) this.pool[a] = saved[a];
    for (const a of Object.keys(saved)) if (saved[a] && !held.includes(a)) this.o.log(`ipamd ${this.o.node.name}: ${a} of ${saved[a]!.containerID} is not the node's any more (the VPC took it back)`);
    this.checkpoint();
    await this.serial.run(() => this.reconcile());
    rmSync(this.o.socketPath, { force: true });
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answer = (status: number, body: IpamdReply) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        let body: IpamdRequest;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as IpamdRequest;
        } catch {
          return answer(400, { error: 'the request is not JSON' });
        }
        this.handle(body).then((r) => answer(200, r), (e: Error) => answer(e instanceof IpamdError ? 409 : 500, { error: e.message }));
      });
    });
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(this.o.socketPath, resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.cooldownTimer);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.serial.idle();
  }

  handle(r: IpamdRequest): Promise<IpamdReply> {
    return this.serial.run(async () => {
      const who = (): Holder => {
        if (!r.containerID || !r.ifName) throw new IpamdError(`${r.command} needs a containerID and an ifName`);
        return { containerID: r.containerID, ifName: r.ifName };
      };
      switch (r.command) {
        case 'ADD': {
          const address = await this.addressFor(who());
          return { address: `${address}/${SUBNET_BITS}`, gateway: VPC.podGateway };
        }
        case 'DEL': {
          const address = addressOf(this.pool, who());
          if (address) this.change(() => this.free([address]));
          return {};
        }
        case 'CHECK':
          if (!addressOf(this.pool, who())) throw new IpamdError(`${r.containerID}/${r.ifName} holds no address of ${this.o.node.name}'s pool`);
          return {};
        case 'GC': {
          const valid = r.valid ?? [];
          const stale = Object.keys(this.pool).filter((a) => this.pool[a] && !valid.some((v) => v.containerID === this.pool[a]!.containerID && v.ifName === this.pool[a]!.ifName));
          for (const a of stale) this.o.log(`ipamd ${this.o.node.name}: gc: ${a} of ${this.pool[a]!.containerID} back to the warm pool`);
          if (stale.length) this.change(() => this.free(stale));
          return {};
        }
        case 'STATUS':
          if (this.stopped) throw new IpamdError('ipamd is stopping');
          return {};
        default:
          throw new IpamdError(`unknown command ${JSON.stringify((r as { command: unknown }).command)}`);
      }
    });
  }

  /** Frees addresses: back to the warm pool, after their cooldown. */
  private free(addresses: string[]): void {
    const until = Date.now() + this.o.cooldownSeconds * 1000;
    for (const a of addresses) {
      this.pool[a] = null;
      this.coolingUntil.set(a, until);
    }
    // When the cooldown ends the pool may be too big: look again then.
    clearTimeout(this.cooldownTimer);
    this.cooldownTimer = setTimeout(() => this.change(() => undefined), this.o.cooldownSeconds * 1000 + 100);
    this.cooldownTimer.unref();
  }

  /** The addresses still cooling down (expired ones forgotten). */
  private cooling(): Set<string> {
    const now = Date.now();
    for (const [a, until] of this.coolingUntil) if (until <= now || this.pool[a] !== null) this.coolingUntil.delete(a);
    return new Set(this.coolingUntil.keys());
  }

  /** An address for the attachment: from the warm pool, or (nothing free but cooling) straight from the VPC, or at worst a cooling one. */
  private async addressFor(who: Holder): Promise<string> {
    let address = assign(this.pool, who, this.cooling());
    if (!address) {
      const total = Object.keys(this.pool).length;
      if (total < this.o.targets.maxIPs) {
        const grow = Math.max(1, Math.min(this.o.targets.maxIPs - total, poolChange(total, usedCount(this.pool) + this.cooling().size + 1, this.o.targets)));
        this.o.log(`ipamd ${this.o.node.name}: no free address in the warm pool; asking the VPC for ${grow}`);
        this.pool = withAddresses(this.pool, await this.o.vpc.assign(this.o.node, grow).catch((e: Error) => (this.o.log(`ipamd ${this.o.node.name}: ${e.message}`), [])));
      }
      // The VPC gave none (the node is full, or the subnet): a cooling address is better than none.
      address = assign(this.pool, who, this.cooling()) ?? assign(this.pool, who);
      if (!address) throw new IpamdError(`${this.o.node.name} holds ${total} addresses, all in use (its pod capacity is ${this.o.targets.maxIPs}, --max-pods)`);
    }
    this.change(() => (this.pool[address] = who));
    return address;
  }

  /** Changes the pool, checkpoints it, and has the pool brought back to its targets once the burst settles. */
  private change(fn: () => void): void {
    fn();
    this.checkpoint();
    if (this.reconcileQueued) return;
    this.reconcileQueued = true;
    setImmediate(() => {
      this.reconcileQueued = false;
      if (!this.stopped) void this.serial.run(() => this.reconcile()).catch((e: Error) => this.o.log(`ipamd ${this.o.node.name}: ${e.message}`));
    });
  }

  /** Brings the pool to WARM_IP_TARGET / MINIMUM_IP_TARGET: more addresses from the VPC, or free ones back to it. */
  private async reconcile(): Promise<void> {
    // Cooling addresses are not there to be given: the warm target counts them as taken.
    const cooling = this.cooling();
    const delta = poolChange(Object.keys(this.pool).length, usedCount(this.pool) + cooling.size, this.o.targets);
    if (delta > 0) {
      this.pool = withAddresses(this.pool, await this.o.vpc.assign(this.o.node, delta));
    } else if (delta < 0) {
      const release = toRelease(this.pool, -delta, cooling);
      // Out of the pool first: nothing can hand them out while the VPC takes them back.
      this.pool = withoutAddresses(this.pool, release);
      this.checkpoint();
      await this.o.vpc.unassign(this.o.node, release);
    }
    this.checkpoint();
  }

  private checkpoint(): void {
    writeJsonAtomically(this.o.checkpointPath, this.pool, 0o600);
  }
}
