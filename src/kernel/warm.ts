// A kubewire process started ahead of its command. Starting Node costs over a second in a
// user-mode Linux kernel (every page fault and system call goes through the host), so the
// guest agent keeps one process loading its bundle with nothing to do; it waits on its fd 3
// for the command line it is to run (takeWarmRequest). It loads at nice 19 and gets the
// ordinary priority back when taken.

import { closeSync, createReadStream, openSync, readdirSync, writeSync } from 'node:fs';
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
  // fd 3 stays open: the exit status goes back on it (reportExit).
  for await (const c of createReadStream('', { fd: 3, autoClose: false })) chunks.push(c as Buffer);
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WarmRequest;
  delete process.env.KUBEWIRE_WARM;
  Object.assign(process.env, req.env);
  process.chdir(req.cwd);
  process.argv = [process.argv[0]!, process.argv[1]!, ...req.argv];
  process.once('exit', (code) => reportExit(code));
}

/** Where the process's output goes once its command is done and it runs on (stayAfterCommand); undefined: it exits with its command. */
let staysWith: string | undefined;

/**
 * The process runs on after its command, writing to `logFile` (`up` in a fresh kernel goes on as
 * the cluster's daemon: one Node start in the guest fewer). commandDone then reports the command's
 * status, rather than the process's exit.
 */
export function stayAfterCommand(logFile: string): void {
  staysWith = logFile;
}

/** The CLI's command is done (cli/main.ts): a process that runs on reports its status now. */
export function commandDone(code: number): void {
  if (staysWith) reportExit(code, staysWith);
}

let reported = false;

/**
 * The command is done: its exit status goes to the guest agent on fd 3 and its stdout and stderr
 * are closed (what it wrote is in the pipes: Node writes pipes synchronously on Linux), so that
 * the command's user has the answer before the process has torn itself down, a second or more
 * in UML (every page it frees goes through the host). Later writes go to `then` (/dev/null): the
 * lowest free descriptors are 1 and 2 again (3 is closed before them, so that they are taken first).
 */
function reportExit(code: number, then = '/dev/null'): void {
  if (reported) return;
  reported = true;
  try {
    writeSync(3, `${JSON.stringify({ exit: code })}\n`);
    closeSync(3);
    closeSync(1);
    closeSync(2);
    openSync(then, 'a');
    openSync(then, 'a');
  } catch {
    // the agent learns the status when the process ends, as for any other
  }
}

/** The exit status a warm process reported on its fd 3 (reportExit), read by the guest agent; undefined until then. */
export function exitReported(child: ChildProcess, onExit: (code: number) => void): void {
  let text = '';
  const fd3 = child.stdio[3] as NodeJS.ReadableStream | null | undefined;
  fd3?.on('data', (b: Buffer) => {
    text += b.toString('utf8');
    const m = /^\{"exit":(\d+)\}\n/.exec(text);
    if (m) onExit(Number(m[1]));
  });
  fd3?.on('error', () => {});
  // What the command started may hold its fd 3 (a daemon `up` started): this end goes once the status came, or the process ended, so that its 'close' still comes.
  const drop = () => (fd3 as { destroy?: () => void } | null | undefined)?.destroy?.();
  child.once('exit', drop);
  fd3?.on('data', () => /\n/.test(text) && drop());
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
