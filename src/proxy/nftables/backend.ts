// The nftables backend: the first sync (and any after a failure or a lost table) replaces
// kubewire's table whole in one `nft -f` transaction; later ones send only the difference
// from what the kernel holds: a few elements for a one-Service change, at any scale.

import { run } from '../../dataplane/linux/exec.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { buildTable, countObjects, renderDiff, renderFull, TABLE, type NftConfig, type NftTable } from './rules.ts';

export class NftablesBackend implements ProxyBackend {
  readonly mode = 'nftables';

  constructor(private readonly netns: string, private readonly cfg: NftConfig) {}

  /** What the kernel holds, as last written; undefined forces a full sync. */
  private current?: NftTable;
  /** How the last sync went in: for tests and the benchmark. */
  lastSync: { kind: 'full' | 'partial' | 'none'; lines: number } = { kind: 'none', lines: 0 };

  async apply(ports: ServicePortInfo[]): Promise<{ counts: Record<string, number>; partial: boolean }> {
    const next = buildTable(ports, this.cfg);
    const script = this.current ? renderDiff(this.current, next) : renderFull(next);
    const kind = this.current ? 'partial' : 'full';
    this.current = undefined; // unknown until the transaction has gone in
    if (script) await run(['nft', '-f', '-'], { netns: this.netns, input: script });
    this.current = next;
    this.lastSync = { kind: script ? kind : 'none', lines: script ? script.split('\n').length - 1 : 0 };
    return { counts: countObjects(next), partial: kind === 'partial' };
  }

  async intact(): Promise<boolean> {
    const tables = await run(['nft', 'list', 'tables'], { netns: this.netns });
    const ok = tables.split('\n').includes(`table ip ${TABLE}`);
    if (!ok) this.current = undefined; // the next sync writes it whole
    return ok;
  }
}
