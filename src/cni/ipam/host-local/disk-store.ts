// host-local's state on disk, byte-compatible with the reference plugin so that either
// implementation can release what the other allocated:
//   <dataDir>/<network>/<ip>                 "containerID\r\nifname" (legacy: "containerID")
//   <dataDir>/<network>/last_reserved_ip.<N> the last IP handed out from range set N
//   <dataDir>/<network>/lock                 flock(2) held across each operation

import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tryParseIP } from '../../../netaddr/ip.ts';
import type { Dataplane, FileLock } from '../../../dataplane/port.ts';

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

export class DiskStore {
  readonly dir: string;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, network);
  }

  /** The network's lock file, taken as the reference plugin takes it (flock), through the dataplane. */
  async lock(dp: Dataplane): Promise<FileLock> {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    return dp.lock(join(this.dir, 'lock'));
  }

  /** Every allocation: IP (as its file name) → owner. Reads each file, as the reference does. */
  allocations(): Map<string, Owner> {
    const out = new Map<string, Owner>();
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw e;
    }
    for (const name of names) {
      if (!tryParseIP(name)) continue;
      try {
        out.set(name, parseOwner(readFileSync(join(this.dir, name), 'utf8')));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    return out;
  }

  /** Claims `ip` for the owner; false when the file already exists. */
  reserve(ip: string, owner: Owner): boolean {
    try {
      writeFileSync(join(this.dir, ip), `${owner.containerID}${LINE_BREAK}${owner.ifname}`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  }

  release(ip: string): void {
    rmSync(join(this.dir, ip), { force: true });
  }

  lastReserved(setIndex: number): string | undefined {
    try {
      return readFileSync(join(this.dir, `${LAST_RESERVED}${setIndex}`), 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  }

  setLastReserved(setIndex: number, ip: string): void {
    const file = join(this.dir, `${LAST_RESERVED}${setIndex}`);
    writeFileSync(`${file}.tmp`, ip, { mode: 0o644 });
    renameSync(`${file}.tmp`, file);
  }
}
