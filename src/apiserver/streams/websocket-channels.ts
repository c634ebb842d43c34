// The Kubernetes channel protocols over WebSocket (k8s.io/apimachinery wsstream, kubelet
// remotecommand): every binary message is one channel byte and its payload. exec and attach
// use channels 0 stdin, 1 stdout, 2 stderr, 3 error (a Status from v4 on, text before),
// 4 resize (v3 on) and 255 close (v5: `0xFF CH` says the client closed channel CH, stdin's EOF).
// Pure: framing, protocol choice and the Status of an exit code.

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const ERROR = 3;
export const RESIZE = 4;
export const CLOSE = 255;

/** exec/attach protocols, the server's preference first (as the kubelet lists them). */
export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'] as const;
export type ExecProtocol = (typeof EXEC_PROTOCOLS)[number];

/** port-forward over WebSocket: kubectl's SPDY tunnelled in binary messages, and client libraries' channels. */
export const TUNNELED_SPDY_PORTFORWARD = 'SPDY/3.1+portforward.k8s.io';
export const PORTFORWARD_CHANNELS = ['v4.channel.k8s.io', 'portforward.k8s.io'] as const;

/** The first protocol of `preference` that the client offered, or undefined (pure). */
export function chooseProtocol(offered: Iterable<string>, preference: readonly string[]): string | undefined {
  const set = new Set([...offered].map((p) => p.trim()));
  return preference.find((p) => set.has(p));
}

/** Which channels a protocol version has. */
export function protocolFeatures(p: ExecProtocol): { statusOnError: boolean; resize: boolean; close: boolean } {
  const v = p === 'channel.k8s.io' ? 1 : Number(p[1]);
  return { statusOnError: v >= 4, resize: v >= 3, close: v >= 5 };
}

export function encodeChannel(channel: number, data: Buffer | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data) : data;
  const out = Buffer.allocUnsafe(payload.length + 1);
  out[0] = channel;
  payload.copy(out, 1);
  return out;
}

/** A message split into channel and payload; undefined for an empty message (pure). */
export function decodeChannel(message: Buffer): { channel: number; data: Buffer } | undefined {
  if (!message.length) return undefined;
  return { channel: message[0]!, data: message.subarray(1) };
}

/** A resize message's terminal size, `{"Width":W,"Height":H}`; undefined when it is not one (pure). */
export function parseResize(data: Buffer | string): { width: number; height: number } | undefined {
  try {
    const v = JSON.parse(data.toString()) as { Width?: unknown; Height?: unknown };
    const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffff;
    return ok(v.Width) && ok(v.Height) ? { width: v.Width, height: v.Height } : undefined;
  } catch {
    return undefined;
  }
}

export interface ExitOutcome {
  /** The command's exit code (128 + N after signal N), or undefined when it could not run. */
  code?: number;
  /** Why it could not run, or what else went wrong. */
  message?: string;
}

/**
 * The error channel's text for how the command ended (pure): from v4 on a Status, Success or
 * NonZeroExitCode with the code as an ExitCode cause (kubectl exits with it); before v4 plain
 * text, empty on success.
 */
export function exitStatus(outcome: ExitOutcome, command: string[], statusOnError = true): string {
  if (outcome.code === 0 && !outcome.message) return statusOnError ? JSON.stringify({ metadata: {}, status: 'Success' }) : '';
  if (outcome.code === undefined) {
    const message = outcome.message ?? 'the command did not run';
    return statusOnError ? JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 }) : message;
  }
  const message = `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${outcome.code}`;
  if (!statusOnError) return message;
  return JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(outcome.code) }] } });
}

/** port-forward over WebSocket channels: port i's data on channel 2i, its errors on 2i+1; each channel's first message starts with the port, uint16 little-endian. */
export function portPrefix(channel: number, port: number): Buffer {
  const b = Buffer.alloc(3);
  b[0] = channel;
  b.writeUInt16LE(port, 1);
  return b;
}
