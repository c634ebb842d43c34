// Container logs as `kubectl logs` reads them: the file the container writes to, whole or
// its last N lines, and with follow, what it appends until the reader goes away; at most
// limitBytes in all. `fromEnd` starts at the end (attach: what the container writes from now).

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';

function lastLines(text: string, n: number): string {
  if (n < 0) return text;
  const lines = text.split('\n');
  const trailing = lines[lines.length - 1] === '' ? lines.pop() : undefined;
  return lines.slice(Math.max(0, lines.length - n)).join('\n') + (trailing !== undefined && n > 0 ? '\n' : '');
}

export function logStream(file: string, opts: { follow: boolean; tailLines?: number; limitBytes?: number; fromEnd?: boolean; stillThere: () => boolean }): Readable {
  let fd: number | undefined;
  let offset = 0;
  let left = opts.limitBytes ?? Infinity;
  let timer: NodeJS.Timeout | undefined;
  let stream: Readable;
  /** Pushes at most what limitBytes leaves; false once the limit is reached (the stream has ended). */
  const give = (b: Buffer): boolean => {
    const part = b.length > left ? b.subarray(0, left) : b;
    left -= part.length;
    if (part.length) stream.push(part);
    if (left > 0) return true;
    clearInterval(timer);
    stream.push(null);
    return false;
  };
  stream = new Readable({
    read() {},
    destroy(err, cb) {
      clearInterval(timer);
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      cb(err);
    },
  });
  const pull = (): boolean => {
    if (fd === undefined) return false;
    const size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    if (size <= offset) return false;
    const buf = Buffer.alloc(size - offset);
    const n = readSync(fd, buf, 0, buf.length, offset);
    offset += n;
    return give(buf.subarray(0, n));
  };
  try {
    fd = openSync(file, 'r');
    const size = statSync(file).size;
    offset = size;
    if (!opts.fromEnd) {
      const all = Buffer.alloc(size);
      readSync(fd, all, 0, size, 0);
      if (!give(opts.tailLines === undefined ? all : Buffer.from(lastLines(all.toString('utf8'), opts.tailLines)))) return stream;
    }
  } catch {
    // no log yet: an empty one
  }
  if (!opts.follow) {
    stream.push(null);
    return stream;
  }
  timer = setInterval(() => {
    if (fd === undefined) {
      try {
        fd = openSync(file, 'r');
      } catch {
        // not yet
      }
    }
    if (!pull() && left <= 0) return;
    if (!opts.stillThere()) {
      clearInterval(timer);
      stream.push(null);
    }
  }, 200);
  return stream;
}
