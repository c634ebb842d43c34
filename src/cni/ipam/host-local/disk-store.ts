// host-local's state on disk, byte-compatible with the reference plugin so that either
// implementation can release what the other allocated:
//   <dataDir>/<network>/<ip>                 "containerID\r\nifname" (legacy: "containerID")
//   <dataDir>/<network>/last_reserved_ip.<N> the last IP handed out from range set N
//   <dataDir>/<network>/lock                 flock(2) held across each operation

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tryParseIP } from '../../../netaddr/ip.ts';
import type { Dataplane, FileLock } from '../../../dataplane/port.ts';
import { readDirFiles, reserveFile, type DirFiles } from './dir-reader.ts';

export interface Owner {
  containerID: string;
  /** Empty for files written by old plugins, which stored only the container ID. */
  ifname: string;
}

const LINE_BREAK = '\r\n';
const LAST_RESERVED = 'last_reserved_ip.';

export function parseOwner(content: string): Owner {
  const [containerID = '', ifname = ''] = content.split(LINE_BREAK);
  return { containerID: containerID.trim(), ifname: ifname.trim() };
}

export function ownedBy(owner: Owner, containerID: string, ifname: string): boolean {
  return owner.containerID === containerID && (owner.ifname === '' || owner.ifname === ifname);
}

/** What the directory holds, read once under the lock: the allocations and the last reserved IPs. */
export interface Snapshot {
  /** IP (as its file name) -> owner. */
  allocations: Map<string, Owner>;
  /** The last IP handed out from range set N, as its file says. */
  lastReserved(setIndex: number): string | undefined;
}

/** The snapshot of a directory's files (pure). */
export function snapshotOf(files: DirFiles): Snapshot {
  const allocations = new Map<string, Owner>();
  for (const [name, content] of files) if (tryParseIP(name)) allocations.set(name, parseOwner(content));
  return { allocations, lastReserved: (i) => files.get(`${LAST_RESERVED}${i}`)?.trim() || undefined };
}

/**
 * The store's reads and the allocation's writes run where the directory was read: on a
 * worker thread when it is large (dir-reader.ts), so that the event loop neither reads a
 * hundred files nor waits for a rename's writeback (on ext4 a rename over a file starts it),
 * and the lock is held for two turns of the loop. All of it under the network's lock, as the
 * reference's operations are.
 */
export class DiskStore {
  readonly dir: string;
  private offThread = false;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, network);
  }

  /** The network's lock file, taken as the reference plugin takes it (flock), through the dataplane. */
  async lock(dp: Dataplane): Promise<FileLock> {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    return dp.lock(join(this.dir, 'lock'));
  }

  /** Every allocation and the last reserved IPs. Reads each file, as the reference does. */
  async snapshot(): Promise<Snapshot> {
    const { files, offThread } = await readDirFiles(this.dir);
    this.offThread = offThread;
    return snapshotOf(files);
  }

  /** Every allocation: IP (as its file name) -> owner. */
  async allocations(): Promise<Map<string, Owner>> {
    return (await this.snapshot()).allocations;
  }

  /**
   * Claims `ip` for the owner, false when the file already exists; with `setIndex`, records
   * it as the last IP reserved from that range set (written beside, then renamed over).
   */
  async reserve(ip: string, owner: Owner, setIndex?: number): Promise<boolean> {
    const last = setIndex === undefined ? undefined : { name: `${LAST_RESERVED}${setIndex}`, content: ip };
    return reserveFile(this.dir, ip, `${owner.containerID}${LINE_BREAK}${owner.ifname}`, last, this.offThread);
  }

  release(ip: string): void {
    rmSync(join(this.dir, ip), { force: true });
  }
}
