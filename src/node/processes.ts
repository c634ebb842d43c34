// Containers that run a command: the command from the host's filesystem, started inside
// the pod's network namespace (nsenter execs it, so the pid is the command's own), in its
// own process group, detached so that it outlives a daemon crash, with stdout and stderr
// appended to the container's log file. What identifies a process across a daemon restart
// is its pid together with its start time (/proc/PID/stat field 22).

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolPath } from '../dataplane/linux/exec.ts';

export interface ProcessRecord {
  pid: number;
  startTicks: string;
  startedAt: string;
}

export function startTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined; // a zombie has finished
    return fields[19];
  } catch {
    return undefined;
  }
}

export function isAlive(rec: ProcessRecord): boolean {
  return startTicks(rec.pid) === rec.startTicks;
}

export interface ProcessSpec {
  argv: string[];
  env: Record<string, string>;
  workingDir?: string;
  netns: string;
  logFile: string;
}

/** Starts the process; `onExit` hears its exit code while this process lives. */
export function startProcess(spec: ProcessSpec, onExit: (code: number | null, signal: NodeJS.Signals | null) => void): Promise<ProcessRecord> {
  mkdirSync(join(spec.logFile, '..'), { recursive: true });
  const out = openSync(spec.logFile, 'a');
  try {
    const child = spawn(toolPath('nsenter'), [`--net=${spec.netns}`, '--', ...spec.argv], {
      detached: true,
      stdio: ['ignore', out, out],
      env: spec.env,
      cwd: spec.workingDir || '/',
    });
    return new Promise((resolve, reject) => {
      child.once('error', (e) => reject(new Error(`cannot start ${JSON.stringify(spec.argv[0])}: ${e.message}`)));
      child.once('spawn', () => {
        child.unref();
        child.once('exit', onExit);
        const pid = child.pid!;
        resolve({ pid, startTicks: startTicks(pid) ?? '', startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') });
      });
    });
  } finally {
    closeSync(out);
  }
}

/** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it is gone. */
export async function stopProcess(rec: ProcessRecord, graceMs: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-rec.pid, sig);
    } catch {
      try {
        process.kill(rec.pid, sig);
      } catch {
        // gone
      }
    }
  };
  if (!isAlive(rec)) return;
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(rec) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  if (isAlive(rec)) {
    signal('SIGKILL');
    while (isAlive(rec)) await new Promise((r) => setTimeout(r, 10));
  }
}
