// The nftables backend: the first sync (and any after a failure or a lost table) replaces
// kubewire's table whole in one `nft -f` transaction; later ones send only the difference
// from what the kernel holds: a few elements for a one-Service change, at any scale.

import type { Netns } from '../../dataplane/port.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { NftState, TABLE, type NftConfig } from './rules.ts';

export class NftablesBackend implements ProxyBackend {
  readonly mode = 'nftables';

  private readonly state: NftState;
  /** False until a full sync has gone in (and again after a failure or a lost table). */
  private synced = false;
  /** How the last sync went in: for tests and the benchmark. */
  lastSync: { kind: 'full' | 'partial' | 'none'; lines: number } = { kind: 'none', lines: 0 };

  constructor(private readonly netns: Netns, cfg: NftConfig) {
    this.state = new NftState(cfg);
  }

  async apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean }> {
    const partial = this.synced;
    let script: string;
    if (partial) script = this.state.update(ports);
    else {
      script = this.state.full(ports).script;
    }
    this.synced = false; // unknown until the transaction has gone in
    if (script) await this.netns.nft(script);
    this.synced = true;
    this.lastSync = { kind: script ? (partial ? 'partial' : 'full') : 'none', lines: script ? script.split('\n').length - 1 : 0 };
    return { counts: this.state.counts(), partial };
  }

  async intact(): Promise<boolean> {
    const ok = (await this.netns.nftTables()).includes(TABLE);
    if (!ok) this.synced = false; // the next sync writes it whole
    return ok;
  }
}
