// Every file of a host-local network directory read at once, off the event loop. An
// allocation reads them all (the owners, for the duplicate check, as the reference plugin's
// GetByID does): at 110 pods a node that is a hundred-odd files per ADD. On the daemon's event
// loop, at 1,000 pods starting under load, those reads held every API request behind them;
// through fs.promises each file is four trips to libuv's pool and costs the loop more than
// reading it. One worker thread reads a directory in one go with the synchronous calls and
// answers with its names and contents. Small directories (and a one-shot plugin process,
// whose reads block nobody) are read here, as before.

import { readdirSync, readFileSync } from 'node:fs';
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
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
parentPort.on('message', ({ id, dir, names }) => {
  const files = [];
  try {
    for (const name of names) {
      try {
        files.push([name, readFileSync(join(dir, name), 'utf8')]);
      } catch (e) {
        if (e.code !== 'ENOENT' && e.code !== 'EISDIR') throw e;
      }
    }
    parentPort.postMessage({ id, files });
  } catch (e) {
    parentPort.postMessage({ id, error: { message: e.message, code: e.code } });
  }
});
`;

interface Reply {
  id: number;
  files?: Array<[string, string]>;
  error?: { message: string; code?: string };
}

let worker: Worker | undefined;
let nextId = 1;
const waiting = new Map<number, { resolve: (f: DirFiles) => void; reject: (e: Error) => void }>();

function theWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
  w.on('message', (r: Reply) => {
    const wait = waiting.get(r.id);
    if (!wait) return;
    waiting.delete(r.id);
    if (!waiting.size) w.unref();
    if (r.error) wait.reject(Object.assign(new Error(r.error.message), { code: r.error.code }));
    else wait.resolve(new Map(r.files));
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

/**
 * name -> content of every file in `dir` (none when it does not exist): listed here (one
 * call), read by the worker when there are many.
 */
export async function readDirFiles(dir: string): Promise<DirFiles> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw e;
  }
  if (names.length <= WORKER_ABOVE) return readDirFilesSync(dir, names);
  const w = theWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    if (!waiting.size) w.ref();
    waiting.set(id, { resolve, reject });
    w.postMessage({ id, dir, names });
  });
}
