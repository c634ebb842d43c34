// The dataplane's tools started by kubewire-spawner (native/spawner.c), a small helper process
// this one starts once: it forks and execs each tool (inside its network namespace), feeds its
// input, collects its output and reaps it, and answers with all of it in one message. The
// event loop only writes a request and reads an answer: none of the waits of a start from a
// large process (page tables to copy, an address space shared with the vfork'd child) touch it.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../state/paths.ts';

/** How a tool ended, and what it wrote. */
export interface Ran {
  code: number | null;
  signal: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** The tool could not be started (the message is "step: reason", as the native helper's). */
export class StartFailed extends Error {
  override name = 'StartFailed';
}

/** A request as the helper reads it (native/spawner.c describes the layout). Pure. */
export function encodeRequest(id: number, file: string, argv: string[], netns: string, input: string): Buffer {
  const parts = [file, ...argv.slice(1)].map((a) => Buffer.from(a));
  const ns = Buffer.from(netns);
  const body = Buffer.from(input);
  const size = 4 + 2 + ns.length + 2 + parts.reduce((n, p) => n + 4 + p.length, 0) + 4 + body.length;
  const out = Buffer.allocUnsafe(4 + size);
  let at = out.writeUInt32LE(size, 0);
  at = out.writeUInt32LE(id, at);
  at = out.writeUInt16LE(ns.length, at);
  at += ns.copy(out, at);
  at = out.writeUInt16LE(parts.length, at);
  for (const p of parts) {
    at = out.writeUInt32LE(p.length, at);
    at += p.copy(out, at);
  }
  at = out.writeUInt32LE(body.length, at);
  body.copy(out, at);
  return out;
}

/** The complete answers at the start of `buf`, and the bytes left over. Pure. */
export function decodeAnswers(buf: Buffer): { answers: Array<{ id: number; err: number; ran: Ran }>; rest: Buffer } {
  const answers: Array<{ id: number; err: number; ran: Ran }> = [];
  let at = 0;
  while (buf.length - at >= 4 && buf.length - at - 4 >= buf.readUInt32LE(at)) {
    const end = at + 4 + buf.readUInt32LE(at);
    const id = buf.readUInt32LE(at + 4);
    const err = buf.readInt32LE(at + 8);
    const code = buf.readInt32LE(at + 12);
    const signal = buf.readInt32LE(at + 16);
    const outLen = buf.readUInt32LE(at + 20);
    const stdout = buf.subarray(at + 24, at + 24 + outLen);
    const errLen = buf.readUInt32LE(at + 24 + outLen);
    const stderr = buf.subarray(at + 28 + outLen, at + 28 + outLen + errLen);
    answers.push({ id, err, ran: { code: code < 0 ? null : code, signal: signal || null, stdout, stderr } });
    at = end;
  }
  return { answers, rest: buf.subarray(at) };
}

interface Waiting {
  resolve: (r: Ran) => void;
  reject: (e: Error) => void;
}

/** One helper process and the requests it has not answered yet. */
class Spawner {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private pending: Buffer = Buffer.alloc(0);
  gone = false;

  constructor(file: string) {
    this.child = spawn(file, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdin!.on('error', () => undefined); // its end: the 'exit' below says why
    this.child.stdout!.on('data', (chunk: Buffer) => this.read(chunk));
    const fail = (why: string) => {
      this.gone = true;
      for (const w of this.waiting.values()) w.reject(new StartFailed(`kubewire-spawner: ${why}`));
      this.waiting.clear();
    };
    this.child.on('error', (e) => fail(e.message));
    this.child.on('exit', (code, signal) => fail(`exited (${signal ?? code})`));
    this.idle();
  }

  run(file: string, argv: string[], netns: string, input: string): Promise<Ran> {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      if (!this.waiting.size) this.busy();
      this.waiting.set(id, { resolve, reject });
      this.child.stdin!.write(encodeRequest(id, file, argv, netns, input));
    });
  }

  private read(chunk: Buffer): void {
    const { answers, rest } = decodeAnswers(this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk);
    this.pending = Buffer.from(rest); // not a view of a chunk whose answers are done with
    for (const a of answers) {
      const w = this.waiting.get(a.id);
      if (!w) continue;
      this.waiting.delete(a.id);
      if (a.err) w.reject(new StartFailed(a.ran.stderr.toString('utf8')));
      else w.resolve(a.ran);
    }
    if (!this.waiting.size) this.idle();
  }

  /** While answers are awaited the helper keeps this process alive; idle, it does not. */
  private busy(): void {
    this.child.ref();
    (this.child.stdout as unknown as { ref(): void }).ref();
  }

  private idle(): void {
    this.child.unref();
    (this.child.stdout as unknown as { unref(): void }).unref();
    (this.child.stdin as unknown as { unref(): void }).unref();
  }
}

let spawner: Spawner | undefined;
let missing = false;

/** The helper's path where it is built (node-gyp's build/Release), else undefined (also in a plugin installed away from the package). */
export function spawnerPath(): string | undefined {
  try {
    const file = join(packageRoot(), 'build', 'Release', 'kubewire-spawner');
    return existsSync(file) ? file : undefined;
  } catch {
    return undefined;
  }
}

/** `file` (argv[0]'s path) run by the helper, started on first use (again if it died); undefined where it is not built. */
export function runBySpawner(file: string, argv: string[], netns: string, input: string): Promise<Ran> | undefined {
  if (missing) return undefined;
  if (!spawner || spawner.gone) {
    const path = spawnerPath();
    if (!path) {
      missing = true;
      return undefined;
    }
    spawner = new Spawner(path);
  }
  return spawner.run(file, argv, netns, input);
}
