// host-local's state on disk, byte-compatible with the reference plugin so that either
// implementation can release what the other allocated:
//   <dataDir>/<network>/<ip>                 "containerID\r\nifname" (legacy: "containerID")
//   <dataDir>/<network>/last_reserved_ip.<N> the last IP handed out from range set N
//   <dataDir>/<network>/lock                 flock(2) held across each operation

import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tryParseIP } from '../../../netaddr/ip.ts';
import type { Dataplane, FileLock } from '../../../dataplane/port.ts';
import { readDirFiles, type DirFiles } from './dir-reader.ts';

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
 * The store's operations wait on the disk (a rename over a file starts its writeback on
 * ext4) without the event loop: writes through fs.promises, the reads of a snapshot in one
 * go (dir-reader.ts). All of them run under the network's lock, as the reference's do.
 */
export class DiskStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, network);
  }

  /** The network's lock file, taken as the reference plugin takes it (flock), through the dataplane. */
  async lock(dp: Dataplane): Promise<FileLock> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    return dp.lock(join(this.dir, 'lock'));
  }

  /** Every allocation and the last reserved IPs. Reads each file, as the reference does. */
  async snapshot(): Promise<Snapshot> {
    return snapshotOf(await readDirFiles(this.dir));
  }

  /** Every allocation: IP (as its file name) -> owner. */
  async allocations(): Promise<Map<string, Owner>> {
    return (await this.snapshot()).allocations;
  }

  /** Claims `ip` for the owner; false when the file already exists. */
  async reserve(ip: string, owner: Owner): Promise<boolean> {
    try {
      await writeFile(join(this.dir, ip), `${owner.containerID}${LINE_BREAK}${owner.ifname}`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  }

  async release(ip: string): Promise<void> {
    await rm(join(this.dir, ip), { force: true });
  }

  async setLastReserved(setIndex: number, ip: string): Promise<void> {
    const file = join(this.dir, `${LAST_RESERVED}${setIndex}`);
    await writeFile(`${file}.tmp`, ip, { mode: 0o644 });
    await rename(`${file}.tmp`, file);
  }
}
