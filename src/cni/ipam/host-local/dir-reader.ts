// Every file of a host-local network directory read at once, off the event loop (and the
// writes of the allocation that follows, under the same lock). An
// allocation reads them all (the owners, for the duplicate check, as the reference plugin's
// GetByID does): at 110 pods a node that is a hundred-odd files per ADD. On the daemon's event
// loop, at 1,000 pods starting under load, those reads held every API request behind them;
// through fs.promises each file is four trips to libuv's pool and costs the loop more than
// reading it. One worker thread reads a directory in one go with the synchronous calls and
// answers with its names and contents. Small directories (and a one-shot plugin process,
// whose reads block nobody) are read here, as before.

import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** A directory's regular files: name -> content (utf8). */
export type DirFiles = Map<string, string>;

/** Directories with more entries than this are read by the worker. */
const WORKER_ABOVE = 32;

/** name -> content of every file in `dir` (none when it does not exist), read on this thread. */
export function readDirFilesSync(dir: string, names?: string[]): DirFiles {
  const out: DirFiles = new Map();
  let list = names;
  if (!list) {
    try {
      list = readdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw e;
    }
  }
  for (const name of list) {
    try {
      out.set(name, readFileSync(join(dir, name), 'utf8'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EISDIR') throw e; // removed meanwhile; the lock file's siblings are files
    }
  }
  return out;
}

// The worker's code, plain JavaScript evaluated as a script (no loader, no imports to bundle).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const ops = {
  read({ dir, names }) {
    const files = [];
    for (const name of names) {
      try {
        files.push([name, readFileSync(join(dir, name), 'utf8')]);
      } catch (e) {
        if (e.code !== 'ENOENT' && e.code !== 'EISDIR') throw e;
      }
    }
    return { files };
  },
  reserve({ dir, name, content, last }) {
    try {
      writeFileSync(join(dir, name), content, { flag: 'wx', mode: 0o600 });
    } catch (e) {
      if (e.code === 'EEXIST') return { taken: false };
      throw e;
    }
    if (last) {
      try {
        writeFileSync(join(dir, last.name + '.tmp'), last.content, { mode: 0o644 });
        renameSync(join(dir, last.name + '.tmp'), join(dir, last.name));
      } catch (e) {
        rmSync(join(dir, name), { force: true });
        throw e;
      }
    }
    return { taken: true };
  },
};
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, ...ops[m.op](m) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: e.message, code: e.code } });
  }
});
`;

interface Reply {
  id: number;
  files?: Array<[string, string]>;
  taken?: boolean;
  error?: { message: string; code?: string };
}

let worker: Worker | undefined;
let nextId = 1;
const waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

function theWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
  w.on('message', (r: Reply) => {
    const wait = waiting.get(r.id);
    if (!wait) return;
    waiting.delete(r.id);
    if (!waiting.size) w.unref();
    if (r.error) wait.reject(Object.assign(new Error(r.error.message), { code: r.error.code }));
    else wait.resolve(r);
  });
  const gone = (e: Error) => {
    if (worker === w) worker = undefined;
    for (const wait of waiting.values()) wait.reject(e);
    waiting.clear();
  };
  w.on('error', gone);
  w.on('exit', (code) => gone(new Error(`host-local's directory reader exited (${code})`)));
  w.unref();
  worker = w;
  return w;
}

/** One request to the worker, its answer. */
function ask(message: Record<string, unknown>): Promise<Reply> {
  const w = theWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    if (!waiting.size) w.ref();
    waiting.set(id, { resolve, reject });
    w.postMessage({ ...message, id });
  });
}

/**
 * name -> content of every file in `dir` (none when it does not exist): listed here (one
 * call), read by the worker when there are many (`offThread` then says so: the writes that
 * follow under the same lock go there too, so that the lock is held for two turns of this
 * thread's loop, not one per file operation).
 */
export async function readDirFiles(dir: string): Promise<{ files: DirFiles; offThread: boolean }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { files: new Map(), offThread: false };
    throw e;
  }
  if (names.length <= WORKER_ABOVE) return { files: readDirFilesSync(dir, names), offThread: false };
  return { files: new Map((await ask({ op: 'read', dir, names })).files), offThread: true };
}

/**
 * Creates `dir`/`name` with `content` unless it exists (false then), and when `last` is given,
 * replaces `dir`/`last.name` with its content through a file beside it and a rename; a failure
 * of that removes `name` again. On the worker thread when `offThread`.
 */
export async function reserveFile(dir: string, name: string, content: string, last: { name: string; content: string } | undefined, offThread: boolean): Promise<boolean> {
  if (offThread) return (await ask({ op: 'reserve', dir, name, content, last })).taken === true;
  try {
    writeFileSync(join(dir, name), content, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  if (last) {
    try {
      writeFileSync(join(dir, `${last.name}.tmp`), last.content, { mode: 0o644 });
      renameSync(join(dir, `${last.name}.tmp`), join(dir, last.name));
    } catch (e) {
      rmSync(join(dir, name), { force: true });
      throw e;
    }
  }
  return true;
}
