// What travels between the CLI, the kernel host and the guest: one JSON object per line,
// bytes in base64, so that the channel (a console line in raw mode) carries nothing but
// printable text and newlines. Between the host and the guest each frame names its session;
// a CLI's socket carries one session and leaves the number out.

export type Frame =
  /** host → guest: open a stream to the unix socket at `path` in the guest (the cluster's API); `in`/`out` carry its bytes, `eof` ends the host's side, `exit` says it closed. */
  | { t: 'dial'; s?: number; path: string }
  /**
   * CLI → guest: run a program itself (no kubewire process: `exec`, resolved on the host), inside
   * the namespace at `netns` (`missing`: the error when it is gone), with the pod's view of names
   * from the directory `view` when that holds one.
   */
  | { t: 'run'; s?: number; argv: string[]; cwd: string; env: Record<string, string>; netns?: string; missing?: string; view?: string }
  /** CLI → guest: the contents of these files of the guest's (its own /run), as one `out` of JSON (path → text, null when there is none), then `exit`. */
  | { t: 'read'; s?: number; paths: string[] }
  /** CLI → guest: run kubewire with these arguments, from this directory, with these variables. */
  | { t: 'start'; s?: number; argv: string[]; cwd: string; env: Record<string, string> }
  /** Bytes for the command's stdin (`in`), from its stdout or stderr. */
  | { t: 'in' | 'out' | 'err'; s?: number; d: string }
  /** The command's stdin has ended. */
  | { t: 'eof'; s?: number }
  /** A signal for the command (the CLI was interrupted, or its socket closed). */
  | { t: 'signal'; s?: number; sig: 'SIGINT' | 'SIGTERM' | 'SIGKILL' }
  /** The command ended; `error` when it could not run at all. */
  | { t: 'exit'; s?: number; code: number; error?: string }
  /** guest → host: it listens on the channel. */
  | { t: 'ready' }
  /** host → guest: power the kernel off. */
  | { t: 'poweroff' };

export const encodeFrame = (f: Frame): string => `${JSON.stringify(f)}\n`;

/**
 * Splits a byte stream into frames. A line that is not a frame (a kernel message on the
 * console, noise before raw mode) is passed to `onNoise` and otherwise ignored.
 */
export class FrameReader {
  private rest = '';

  constructor(private readonly onFrame: (f: Frame) => void, private readonly onNoise: (line: string) => void = () => {}) {}

  push(chunk: Buffer | string): void {
    const lines = (this.rest + chunk.toString('utf8')).split('\n');
    this.rest = lines.pop()!;
    for (const line of lines) {
      const text = line.replace(/\r$/, '');
      if (!text) continue;
      let f: unknown;
      try {
        f = JSON.parse(text);
      } catch {
        this.onNoise(text);
        continue;
      }
      if (f && typeof f === 'object' && typeof (f as { t?: unknown }).t === 'string') this.onFrame(f as Frame);
      else this.onNoise(text);
    }
  }
}

/** The variables a CLI passes into the guest: kubewire's own and the terminal's, never the state directory (the guest has its own). */
export function forwardedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || k === 'KUBEWIRE_STATE_DIR') continue;
    if (k.startsWith('KUBEWIRE_') || k === 'TERM' || k === 'COLUMNS' || k === 'NO_COLOR') out[k] = v;
  }
  return out;
}
