// exec and attach: a command's (or a running container's) stdio carried over a WebSocket of
// channels (websocket-channels.ts) or SPDY streams (spdy.ts), as the kubelet serves them. The
// command itself comes from the daemon (ExecHooks), which knows pods, namespaces and processes.

import type { Readable, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { StatusError } from '../status.ts';
import type { SpdySession, SpdyStream } from './spdy.ts';
import { CLOSE, encodeChannel, decodeChannel, ERROR, exitStatus, parseResize, protocolFeatures, RESIZE, STDERR, STDIN, STDOUT, type ExecProtocol, type ExitOutcome } from './websocket-channels.ts';

/** A 400 Status, as the kubelet and API server answer a request they cannot serve as asked. */
export const badRequest = (message: string): StatusError => new StatusError(400, 'BadRequest', message);

export interface ExecRequest {
  namespace: string;
  pod: string;
  /** Unset: the pod's first container (kubectl picks one and sends it). */
  container?: string;
  /** Empty for attach. */
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** A command started (exec) or a container joined (attach), with the streams asked for. */
export interface ContainerSession {
  stdin?: Writable;
  stdout?: Readable;
  stderr?: Readable;
  /** A terminal's new size (tty only). */
  resize?(size: { width: number; height: number }): void;
  /** Resolves once the command ended and its output was read to the end. */
  done: Promise<ExitOutcome>;
  /** The client went away: stop (exec kills its command; attach only lets go). */
  kill(): void;
}

/** Starts a session; throws StatusError (NotFound, BadRequest...) for the Status the client gets. */
export type StartSession = (r: ExecRequest) => Promise<ContainerSession>;

const truthy = (v: string | null) => v === 'true' || v === '1';

/** exec's or attach's query as a request; a StatusError names what is wrong (pure). */
export function parseExecQuery(kind: 'exec' | 'attach', namespace: string, pod: string, q: URLSearchParams): ExecRequest {
  const r: ExecRequest = {
    namespace,
    pod,
    container: q.get('container') || undefined,
    command: kind === 'exec' ? q.getAll('command') : [],
    stdin: truthy(q.get('stdin')),
    stdout: truthy(q.get('stdout')),
    stderr: truthy(q.get('stderr')),
    tty: truthy(q.get('tty')),
  };
  if (kind === 'exec' && !r.command.length) throw badRequest('you must specify at least one command for the container');
  if (!r.stdin && !r.stdout && !r.stderr) throw badRequest('you must specify at least 1 of stdin, stdout, stderr');
  // A terminal has one output: stderr travels on stdout's stream, as the kubelet sends it.
  if (r.tty) r.stderr = false;
  return r;
}

/** Output read while the peer keeps up: a stream is paused while `max` sends are in flight. */
function pump(from: Readable, send: (b: Buffer, done: () => void) => void, max = 16): Promise<void> {
  return new Promise((resolve) => {
    let inFlight = 0;
    from.on('data', (b: Buffer) => {
      inFlight++;
      if (inFlight >= max) from.pause();
      send(b, () => {
        inFlight--;
        if (inFlight < max / 2 && from.isPaused()) from.resume();
      });
    });
    from.once('end', () => resolve());
    from.once('close', () => resolve());
    from.once('error', () => resolve());
  });
}

/** Writes what the client sent; a full writer stops reading the client until it drains (a flood is held there, not here). */
export function writeHeld(ws: WebSocket, to: Writable, data: Buffer): void {
  if (to.write(data) || to.destroyed) return;
  ws.pause();
  const resume = () => {
    to.off('drain', resume);
    to.off('close', resume);
    ws.resume();
  };
  to.on('drain', resume);
  to.on('close', resume);
}

/** A session over a WebSocket of channels; the socket closes (1000) after the error channel's Status. */
export function serveOverWebSocket(ws: WebSocket, protocol: ExecProtocol, r: ExecRequest, s: ContainerSession): void {
  const features = protocolFeatures(protocol);
  let closed = false;
  const send = (channel: number, b: Buffer | string, done: () => void = () => undefined) => {
    if (closed || ws.readyState !== ws.OPEN) return done();
    ws.send(encodeChannel(channel, b), { binary: true }, () => done());
  };
  s.stdin?.on('error', () => undefined); // a command that exits before reading its input
  ws.on('message', (raw: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    const m = decodeChannel(raw);
    if (!m) return;
    if (m.channel === STDIN && s.stdin) writeHeld(ws, s.stdin, m.data);
    else if (m.channel === RESIZE && features.resize) {
      const size = parseResize(m.data);
      if (size) s.resize?.(size);
    } else if (m.channel === CLOSE && features.close && m.data[0] === STDIN) s.stdin?.end();
  });
  ws.on('close', () => {
    closed = true;
    s.kill();
  });
  ws.on('error', () => undefined);
  const outputs = [s.stdout ? pump(s.stdout, (b, d) => send(STDOUT, b, d)) : undefined, s.stderr ? pump(s.stderr, (b, d) => send(STDERR, b, d)) : undefined];
  void Promise.all([s.done, ...outputs]).then(([outcome]) => {
    if (closed) return;
    const text = exitStatus(outcome, r.command, features.statusOnError);
    if (text) send(ERROR, text);
    ws.close(1000);
  });
}

/** Which SPDY streams a session waits for before it starts, as the kubelet does. */
export function expectedStreams(r: ExecRequest, protocolResize: boolean): string[] {
  return ['error', ...(r.stdin ? ['stdin'] : []), ...(r.stdout ? ['stdout'] : []), ...(r.stderr ? ['stderr'] : []), ...(r.tty && protocolResize ? ['resize'] : [])];
}

/**
 * A session over SPDY: the client opens one stream per channel (`streamtype` header); once
 * every expected one is there (within `timeoutMs`), stdio flows; the error stream gets the
 * outcome, then the connection closes.
 */
export function serveOverSpdy(session: SpdySession, protocol: ExecProtocol, r: ExecRequest, start: () => Promise<ContainerSession>, timeoutMs = 30_000): (stream: SpdyStream) => void {
  const features = protocolFeatures(protocol);
  const want = expectedStreams(r, features.resize);
  const got = new Map<string, SpdyStream>();
  const timer = setTimeout(() => session.close(new Error(`timed out waiting for the client's streams (${want.filter((w) => !got.has(w)).join(', ')})`)), timeoutMs);
  timer.unref();
  let begun = false;
  return (stream) => {
    const type = stream.headers.streamtype ?? '';
    stream.on('error', () => undefined);
    if (!want.includes(type) || got.has(type)) return void stream.destroy();
    got.set(type, stream);
    if (begun || got.size < want.length) return;
    begun = true;
    clearTimeout(timer);
    const error = got.get('error')!;
    void start().then(
      (s) => {
        const stdin = got.get('stdin');
        if (stdin && s.stdin) {
          s.stdin.on('error', () => undefined);
          stdin.pipe(s.stdin);
        }
        let pending = '';
        got.get('resize')?.on('data', (b: Buffer) => {
          pending += b.toString();
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const size = parseResize(pending.slice(0, nl));
            pending = pending.slice(nl + 1);
            if (size) s.resize?.(size);
          }
        });
        const outputs = (['stdout', 'stderr'] as const).map((name) => {
          const from = s[name];
          const to = got.get(name);
          if (!from || !to) return undefined;
          return pump(from, (b, d) => void to.write(b, () => d()));
        });
        error.once('close', () => s.kill());
        void Promise.all([s.done, ...outputs]).then(([outcome]) => {
          const text = exitStatus(outcome, r.command, features.statusOnError);
          for (const st of got.values()) if (st !== error) st.end();
          error.end(text, () => session.close());
        });
      },
      (e: unknown) => error.end(e instanceof Error ? e.message : String(e), () => session.close()),
    );
  };
}
