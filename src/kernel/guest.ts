// Inside a cluster's own kernel: the guest end of the channel. It reads frames from its
// console line (raw mode), runs each session's kubewire command with piped stdio, and sends
// the command's output and exit status back. The state directory is the guest's tmpfs: the
// cluster's files go with its kernel.
//
// Starting Node costs over a second in UML, so the guest keeps one kubewire process warm
// (warm.ts). A session takes it; the next one starts loading once no command runs (a Node
// process loading reads its files through hostfs, which holds up the whole kernel whatever
// its priority).

import { existsSync, openSync, readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import tty from 'node:tty';
import { cliPath, packageRoot } from '../state/paths.ts';
import { loadSpawnIn, startIn, StartError, type PipedProcess } from '../supervisor/spawn-in.ts';
import { startPiped, startPipedIn } from '../supervisor/supervisor.ts';
import { encodeFrame, FrameReader, type Frame } from './frames.ts';
import { exitReported, WarmCli } from './warm.ts';

/** Exit status as a shell reports it: the code, or 128 + the signal's number. */
const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
const statusOf = (code: number | null, signal: NodeJS.Signals | null): number => code ?? 128 + (signal ? SIGNALS[signal] ?? 0 : 0);

/** How long a session waits for the rest of a command's output once the command reported its status. */
const OUTPUT_GRACE_MS = 500;

export async function runGuest(channel: string): Promise<void> {
  const fd = openSync(channel, 'r+');
  const input = new tty.ReadStream(fd);
  input.setRawMode(true);
  const output = new tty.WriteStream(fd);
  const send = (f: Frame) => output.write(encodeFrame(f));
  const sessions = new Map<number, PipedProcess>();
  // `exec`'s programs start in one step where the native helper is built (nsenter, unshare and a shell otherwise).
  const native = loadSpawnIn(join(packageRoot(), 'build', 'Release', 'kubewire_netns.node'));

  const warm = new WarmCli([process.execPath, cliPath()], process.env);
  const startWarm = () => {
    if (!sessions.size) warm.prepare();
  };
  // The kernel's first `up` goes on as the cluster's daemon (daemon/here.ts): its process starts
  // as that daemon (`daemon --cluster C`, the daemon's Node flags), so that its command line says so.
  const cluster = process.env.KUBEWIRE_CLUSTER;
  const warmUp = cluster ? new WarmCli([process.execPath, '--expose-gc', cliPath(), 'daemon', '--cluster', cluster], process.env) : undefined;
  const takeWarm = (f: Extract<Frame, { t: 'start' }>, cwd: string) => {
    const up = f.argv[0] === 'up' && cluster ? warmUp?.take({ argv: f.argv, cwd, env: { ...f.env, KUBEWIRE_DAEMON_HERE: cluster } }) : undefined;
    return up ?? warm.take({ argv: f.argv, cwd, env: f.env });
  };

  const start = (s: number, f: Extract<Frame, { t: 'start' }>) => {
    // The host's tree is the guest's, but for the kernel's own /run, /proc, /sys and /dev.
    const cwd = existsSync(f.cwd) ? f.cwd : '/';
    let child = takeWarm(f, cwd);
    if (child) {
      // Its status as soon as its command is done (reportExit), with its output to the end: the session ends then, not when the process has torn itself down.
      const taken = child;
      let code: number | undefined;
      let open = 2;
      const done = () => {
        if (code === undefined || open || sessions.get(s) !== taken || !sessions.delete(s)) return;
        send({ t: 'exit', s, code });
        startWarm(); // the next one loads while this one tears itself down
      };
      // What its output was written to may live on with a copy of it (the tool spawner an `up`
      // that goes on as the daemon started): past a moment after the status, the output is all in.
      const settle = () => setTimeout(() => ((open = 0), done()), OUTPUT_GRACE_MS).unref();
      exitReported(taken, (c) => ((code = c), done(), settle()));
      for (const out of [taken.stdout!, taken.stderr!]) out.once('end', () => (open--, done()));
    }
    if (!child) {
      try {
        child = startPiped([process.execPath, cliPath(), ...f.argv], { cwd, env: { ...process.env, ...f.env } });
      } catch (e) {
        send({ t: 'exit', s, code: 127, error: e instanceof Error ? e.message : String(e) });
        return;
      }
    }
    attach(s, child);
  };

  /** `exec` as the host resolved it: the program started here directly, with no Node start. */
  const run = (s: number, f: Extract<Frame, { t: 'run' }>) => {
    if (f.netns && !existsSync(f.netns)) return send({ t: 'exit', s, code: 1, error: f.missing ?? `${f.netns} does not exist` });
    const hostname = f.view && existsSync(join(f.view, 'hostname')) ? readFileSync(join(f.view, 'hostname'), 'utf8').trim() : undefined;
    let child: PipedProcess;
    const opts = { cwd: existsSync(f.cwd) ? f.cwd : '/', env: { ...process.env, ...f.env }, ...(f.netns ? { netns: f.netns } : {}), ...(f.view && hostname ? { view: { dir: f.view, hostname } } : {}) };
    try {
      child = native ? startIn(native, f.argv, opts) : startPipedIn(f.argv, opts);
    } catch (e) {
      return send({ t: 'exit', s, code: e instanceof StartError ? e.status : 127, error: e instanceof Error ? e.message : String(e) });
    }
    attach(s, child);
  };

  /** Files the host cannot see (the guest's /run: a pod's view of names), read here with no process started. */
  const read = (s: number, paths: string[]) => {
    const files: Record<string, string | null> = {};
    for (const path of paths) {
      try {
        files[path] = readFileSync(path, 'utf8');
      } catch {
        files[path] = null;
      }
    }
    send({ t: 'out', s, d: Buffer.from(JSON.stringify(files)).toString('base64') });
    send({ t: 'exit', s, code: 0 });
  };

  /** A session's process: its output and exit status go back as frames. */
  const attach = (s: number, child: PipedProcess) => {
    sessions.set(s, child);
    child.stdout!.on('data', (b: Buffer) => send({ t: 'out', s, d: b.toString('base64') }));
    child.stderr!.on('data', (b: Buffer) => send({ t: 'err', s, d: b.toString('base64') }));
    child.stdin!.on('error', () => {}); // the command may end before reading its input
    child.on('error', (e) => {
      if (sessions.delete(s)) send({ t: 'exit', s, code: 127, error: e.message });
    });
    child.on('close', (code, signal) => {
      if (sessions.delete(s)) send({ t: 'exit', s, code: statusOf(code, signal) });
      startWarm();
    });
  };

  // Streams to the cluster's API socket, for the verbs the host runs itself (kernel/client.ts):
  // no Node start in here for them.
  const streams = new Map<number, Socket>();
  const dial = (s: number, path: string) => {
    const socket = createConnection(path);
    streams.set(s, socket);
    socket.on('data', (b: Buffer) => send({ t: 'out', s, d: b.toString('base64') }));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (streams.delete(s)) send({ t: 'exit', s, code: 0 });
    });
  };

  const reader = new FrameReader((f) => {
    if (f.t === 'poweroff') process.exit(0); // PID 1 syncs and powers the kernel off
    if (f.t === 'ready' || f.s === undefined) return;
    const stream = streams.get(f.s);
    if (f.t === 'dial') return dial(f.s, f.path);
    if (stream) {
      if (f.t === 'in') stream.write(Buffer.from(f.d, 'base64'));
      else if (f.t === 'eof') stream.end();
      else if (f.t === 'signal') stream.destroy();
      return;
    }
    const child = sessions.get(f.s);
    if (f.t === 'start') start(f.s, f);
    else if (f.t === 'run') run(f.s, f);
    else if (f.t === 'read') read(f.s, f.paths);
    else if (f.t === 'in') child?.stdin!.write(Buffer.from(f.d, 'base64'));
    else if (f.t === 'eof') child?.stdin!.end();
    else if (f.t === 'signal' && child?.pid) {
      try {
        process.kill(-child.pid, f.sig); // the command's group: what it runs goes with it
      } catch {
        // already gone
      }
    }
  });
  input.on('data', (b: Buffer) => reader.push(b));
  send({ t: 'ready' });
  if (warmUp) warmUp.prepare();
  else startWarm();
  await new Promise<void>((resolve) => input.on('end', resolve));
}
