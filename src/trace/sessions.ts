// Trace sessions that run at once (the CLI's, the page's, several users'): each claims its own
// range of source ports in a record every session reads under one lock, so no two sessions
// mark, capture or delete each other's packets, rules or conntrack entries; the names of its
// table, chains and conntrack mark come from its range (observe.ts). A session whose process
// died (kill -9) is found dead in the record by the next one, which removes what it left
// in the namespaces it had marked. iptables-legacy's TRACE lines all go to nfnetlink_log group 0,
// which one reader per namespace may hold: sessions that read it in a namespace take turns
// there (a lock per namespace, taken in one order).

import { readFileSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Dataplane, FileLock } from '../dataplane/port.ts';

export const TRACE_RUN_DIR = '/run/kubewire/trace';
/** The trace range: above Linux's ephemeral ports (32768-60999), where no other socket takes them (the ingress accepts a trace port only here). */
export const TRACE_PORTS = { lo: 61_000, hi: 64_999 };

/** A session as the record holds it: who runs it, its ports, and where it put rules. */
export interface SessionRecord {
  pid: number;
  lo: number;
  hi: number;
  marking: 'nft' | 'iptables';
  /** The namespaces it marks, and whether it marks conntrack entries there. */
  places: Array<{ netns: string; conntrack: boolean }>;
}

export class SessionError extends Error {
  override name = 'SessionError';
}

/** A free range of `count` ports beside the sessions running (pure: `random` in [0, 1)). */
export function freeRange(count: number, taken: Array<{ lo: number; hi: number }>, random: () => number = Math.random): { lo: number; hi: number } | undefined {
  const span = TRACE_PORTS.hi - TRACE_PORTS.lo + 1;
  if (count < 1 || count > span) return undefined;
  const free = (lo: number) => !taken.some((t) => lo <= t.hi && t.lo <= lo + count - 1);
  for (let i = 0; i < 64; i++) {
    const lo = TRACE_PORTS.lo + Math.floor(random() * (span - count + 1));
    if (free(lo)) return { lo, hi: lo + count - 1 };
  }
  // Crowded: the first gap that fits.
  const edges = [TRACE_PORTS.lo, ...taken.map((t) => t.hi + 1)].sort((a, b) => a - b);
  for (const lo of edges) if (lo + count - 1 <= TRACE_PORTS.hi && free(lo)) return { lo, hi: lo + count - 1 };
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readRecord(path: string): SessionRecord[] {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return Array.isArray(v) ? (v as SessionRecord[]) : [];
  } catch {
    return [];
  }
}

function writeRecord(path: string, sessions: SessionRecord[]): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(sessions));
  renameSync(tmp, path);
}

/** The session record and its lock, in a directory (the host's, or a cluster kernel's own /run). */
export class Sessions {
  private readonly record: string;
  private readonly lockPath: string;

  constructor(
    private readonly dp: Dataplane,
    private readonly dir: string = TRACE_RUN_DIR,
  ) {
    this.record = join(dir, 'sessions.json');
    this.lockPath = join(dir, 'sessions.lock');
  }

  /** Claims a range of `count` ports; returns it with the dead sessions found (to be swept by the caller). */
  async claim(count: number, what: Omit<SessionRecord, 'pid' | 'lo' | 'hi'>): Promise<{ lo: number; hi: number; dead: SessionRecord[] }> {
    mkdirSync(this.dir, { recursive: true });
    const lock = await this.dp.lock(this.lockPath);
    try {
      const all = readRecord(this.record);
      const live = all.filter((s) => alive(s.pid));
      const dead = all.filter((s) => !alive(s.pid));
      const range = freeRange(count, live);
      if (!range) throw new SessionError(`${count} probes: no free range of source ports in ${TRACE_PORTS.lo}-${TRACE_PORTS.hi} beside the ${live.length} traces running; try again when they end`);
      writeRecord(this.record, [...live, { pid: process.pid, ...range, ...what }]);
      return { ...range, dead };
    } finally {
      lock.release();
    }
  }

  /** The session is over: its range is free again. */
  async release(lo: number): Promise<void> {
    const lock = await this.dp.lock(this.lockPath);
    try {
      writeRecord(this.record, readRecord(this.record).filter((s) => !(s.pid === process.pid && s.lo === lo)));
    } finally {
      lock.release();
    }
  }

  /** Takes turns reading nfnetlink_log group 0 in these namespaces (locks taken in one order, so sessions never wait on each other in a cycle). */
  async nflog(netns: string[]): Promise<FileLock> {
    mkdirSync(this.dir, { recursive: true });
    const held: FileLock[] = [];
    try {
      for (const ns of [...new Set(netns)].sort()) held.push(await this.dp.lock(join(this.dir, `nflog-${basename(ns)}.lock`)));
    } catch (e) {
      for (const l of held) l.release();
      throw e;
    }
    return { release: () => held.splice(0).reverse().forEach((l) => l.release()) };
  }
}
