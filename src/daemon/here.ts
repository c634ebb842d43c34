// `up` in a fresh kernel of its own goes on as the cluster's daemon, in the same process: in
// user-mode Linux a Node start and the bundle's load cost seconds (every page fault goes through
// the host), and this takes one of them off `up`'s path. The guest agent starts that process as
// `kubewire daemon --cluster C` (kernel/guest.ts), so that its command line names it as the
// daemon (livePid, roleOf), and hands it `up` with KUBEWIRE_DAEMON_HERE=C.

import { appendFileSync, readFileSync } from 'node:fs';
import { ApiClient } from '../client/rest.ts';
import type { Node } from '../api/types.ts';
import { networkAvailable } from '../controllers/scheduler.ts';
import { stayAfterCommand } from '../kernel/warm.ts';
import { daemonPaths } from '../state/paths.ts';

/**
 * Whether `up` for `cluster` is to become its daemon rather than start one (pure): asked to
 * (`env`), and started as that daemon (`cmdline`, this process's /proc/self/cmdline words), so
 * that whatever looks for the daemon by its command line finds this process.
 */
export function becomesDaemon(cluster: string, env: NodeJS.ProcessEnv, cmdline: string[]): boolean {
  const cli = cmdline.findIndex((a, i) => i > 0 && a.endsWith('kubewire.js'));
  return env.KUBEWIRE_DAEMON_HERE === cluster && cli > 0 && cmdline[cli + 1] === 'daemon' && cmdline[cmdline.indexOf('--cluster') + 1] === cluster;
}

/** This process's command line as /proc has it (what livePid and roleOf read). */
export const ownCmdline = (): string[] => {
  try {
    return readFileSync('/proc/self/cmdline', 'utf8').split('\0');
  } catch {
    return [];
  }
};

/** The phases this process's daemon wrote so far (the daemon's progress file, one JSON line each). */
function phasesOf(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pid: number; phase: string }).filter((p) => p.pid === process.pid).map((p) => p.phase);
  } catch {
    return [];
  }
}

/**
 * Runs the cluster's daemon in this process and waits, as startDaemon does for a started one,
 * until its API answers and `nodes` nodes are Ready, reporting each phase. Its log goes to the
 * daemon's log file; once `up` is done its status goes back and its output goes there too
 * (kernel/warm.ts). A daemon that fails or stalls ends the process with one error line: the
 * host powers a kernel whose `up` failed off, nothing of it is left.
 */
export async function becomeDaemon(cluster: string, nodes: number, progress: (line: string) => void, stallMs: number): Promise<number> {
  delete process.env.KUBEWIRE_DAEMON_HERE; // not for what this process starts
  process.chdir('/'); // as a started daemon: the user's directory (hostfs) is not the daemon's
  const paths = daemonPaths(cluster);
  const log = (line: string) => appendFileSync(paths.log, `${new Date().toISOString()} ${line}\n`, { mode: 0o600 });
  stayAfterCommand(paths.log);
  const fail = (why: string): never => {
    process.stderr.write(`error: the daemon of cluster ${cluster} ${why} (see ${paths.log})\n`);
    process.exit(1);
  };
  let failed: unknown;
  const { runDaemon } = await import('./daemon.ts');
  void runDaemon(cluster, log).catch((e: unknown) => (failed = e));
  const client = new ApiClient(paths.socket);
  let seen = 0;
  let last = Date.now();
  for (;;) {
    if (failed) fail(`could not start: ${failed instanceof Error ? failed.message : String(failed)}`);
    const phases = phasesOf(paths.progress);
    for (const phase of phases.slice(seen)) progress(phase);
    if (phases.length > seen) last = Date.now();
    seen = phases.length;
    const ready = await client
      .call<{ items: Node[] }>('GET', '/api/v1/nodes')
      .then((l) => l.items.filter((n) => networkAvailable(n) && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length, () => 0);
    if (ready >= nodes) return process.pid;
    if (Date.now() - last > stallMs) fail(`made no progress for ${stallMs / 1000} s${seen ? ` (last: ${phases[seen - 1]})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
