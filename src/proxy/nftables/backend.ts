// The nftables backend: each sync replaces kubewire's table in one `nft -f` transaction
// (add, delete and re-create in the same batch: the kernel swaps it atomically).

import { run } from '../../dataplane/linux/exec.ts';
import type { ServicePortInfo } from '../model.ts';
import type { ProxyBackend } from '../proxier.ts';
import { buildNftables, TABLE, type NftConfig } from './rules.ts';

export class NftablesBackend implements ProxyBackend {
  readonly mode = 'nftables';

  constructor(private readonly netns: string, private readonly cfg: NftConfig) {}

  async apply(ports: ServicePortInfo[]): Promise<Record<string, number>> {
    const { script, counts } = buildNftables(ports, this.cfg);
    await run(['nft', '-f', '-'], { netns: this.netns, input: script });
    return counts;
  }

  async intact(): Promise<boolean> {
    const tables = await run(['nft', 'list', 'tables'], { netns: this.netns });
    return tables.split('\n').includes(`table ip ${TABLE}`);
  }
}
