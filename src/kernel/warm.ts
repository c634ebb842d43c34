// A kubewire process started ahead of its command. Starting Node costs over a second in a
// user-mode Linux kernel (every page fault and system call goes through the host), so the
// guest agent keeps one process loading its bundle with nothing to do; it waits on its fd 3
// for the command line it is to run (takeWarmRequest). It loads at nice 19 and gets the
// ordinary priority back when taken.

import { createReadStream, readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { startPiped, type ChildProcess } from '../supervisor/supervisor.ts';

/** What a warm kubewire process is given to do. */
export interface WarmRequest {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

/**
 * In a warm process (KUBEWIRE_WARM is set): waits for its command line on fd 3 and becomes
 * that command (argv, working directory, environment), before the CLI reads any of them.
 */
export async function takeWarmRequest(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of createReadStream('', { fd: 3 })) chunks.push(c as Buffer);
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WarmRequest;
  delete process.env.KUBEWIRE_WARM;
  Object.assign(process.env, req.env);
  process.chdir(req.cwd);
  process.argv = [process.argv[0]!, process.argv[1]!, ...req.argv];
}

/** One kubewire process kept warm: `prepare` starts it, `take` gives it its command. */
export class WarmCli {
  private warm?: ChildProcess;

  /** `argv`: node and the CLI's entry; `env`: the environment it starts with (a request adds to it). */
  constructor(private readonly argv: string[], private readonly env: NodeJS.ProcessEnv) {}

  /** Starts a process loading, unless one is. */
  prepare(): void {
    if (this.warm) return;
    const child = startPiped(this.argv, { cwd: '/', env: { ...this.env, KUBEWIRE_WARM: '1' }, extraPipe: true });
    child.on('error', () => {});
    child.on('exit', () => {
      if (this.warm === child) this.warm = undefined;
    });
    if (child.pid) setNice(child.pid, 19);
    // A process kept waiting does not keep its starter alive: the starter may end meanwhile.
    refs(child, false);
    this.warm = child;
  }

  /** The warm process, now running `request` at the ordinary priority; undefined when none is left. */
  take(request: WarmRequest): ChildProcess | undefined {
    const child = this.warm;
    this.warm = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return undefined;
    if (child.pid) setNice(child.pid, 0);
    refs(child, true);
    (child.stdio[3] as NodeJS.WritableStream).end(JSON.stringify(request));
    return child;
  }

  /** Ends the process kept warm (it has nothing to lose). */
  discard(): void {
    this.warm?.kill('SIGKILL');
    this.warm = undefined;
  }
}

/** Whether a child and its pipes keep the event loop alive. */
function refs(child: ChildProcess, on: boolean): void {
  for (const h of [child, ...child.stdio]) {
    const handle = h as { ref?: () => void; unref?: () => void } | null;
    if (on) handle?.ref?.();
    else handle?.unref?.();
  }
}

/**
 * A process's nice value, thread by thread: Linux keeps one per thread, and Node's helper
 * threads (GC, compilation, I/O) left at 19 would starve the command once it runs. Lowering
 * it again needs root (the guest agent is root in its kernel): as anyone else the process keeps 19.
 */
function setNice(pid: number, nice: number): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // gone meanwhile
  }
  for (const tid of tids) {
    try {
      setPriority(Number(tid), nice);
    } catch {
      // that thread ended meanwhile, or lowering is not ours to do
    }
  }
}
