// Container logs as `kubectl logs` reads them: the file the container writes to, whole or
// its last N lines, and with follow, what it appends until the reader goes away.

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';

function lastLines(text: string, n: number): string {
  if (n < 0) return text;
  const lines = text.split('\n');
  const trailing = lines[lines.length - 1] === '' ? lines.pop() : undefined;
  return lines.slice(Math.max(0, lines.length - n)).join('\n') + (trailing !== undefined && n > 0 ? '\n' : '');
}

export function logStream(file: string, opts: { follow: boolean; tailLines?: number; stillThere: () => boolean }): Readable {
  let fd: number | undefined;
  let offset = 0;
  let timer: NodeJS.Timeout | undefined;
  const stream = new Readable({
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
    stream.push(buf.subarray(0, n));
    return true;
  };
  try {
    fd = openSync(file, 'r');
    const size = statSync(file).size;
    const all = Buffer.alloc(size);
    readSync(fd, all, 0, size, 0);
    offset = size;
    stream.push(opts.tailLines === undefined ? all : lastLines(all.toString('utf8'), opts.tailLines));
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
    pull();
    if (!opts.stillThere()) {
      clearInterval(timer);
      stream.push(null);
    }
  }, 200);
  return stream;
}
