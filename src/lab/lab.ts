// A lab: network namespaces (and scratch directories) made for a demo, test or benchmark,
// all removed by cleanup() — also when the process is interrupted. Nothing here ever
// touches the machine's own root namespace: links are created inside lab namespaces only.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { linux } from '../dataplane/linux/host.ts';
import type { NetOp } from '../dataplane/port.ts';
import { startChild, type ChildProcess } from '../supervisor/supervisor.ts';

// A tiny HTTP server that answers with its name and the client's address as it sees it
// (proof of no NAT), and a client with a bounded timeout. Both run with the machine's node.
const ECHO_SERVER = `require('http').createServer((q, s) => s.end('hello from ' + process.argv[2] + ', you are ' + q.socket.remoteAddress.replace('::ffff:', '') + '\\n')).listen(Number(process.argv[1]), '0.0.0.0', () => console.log('ready'))`;
const HTTP_GET = `fetch(process.argv[1], { signal: AbortSignal.timeout(Number(process.argv[2])) }).then(r => r.text()).then(t => process.stdout.write(t), e => { console.error(String(e.cause ?? e)); process.exit(1) })`;
const NAME = /^[a-z0-9][a-z0-9-]{0,40}$/;

/**
 * Runs `cleanup` when the process is interrupted (Ctrl-C, SIGTERM), then exits 130: what a
 * demo, test or benchmark made must go even when it is stopped. Returns the way to stop
 * listening (once cleaned up normally).
 */
export function cleanupOnInterrupt(cleanup: () => Promise<unknown>): () => void {
  const onSignal = (): void => {
    // What was running fails as its namespaces go: that is expected now, not worth a stack trace.
    process.on('uncaughtException', () => undefined);
    process.on('unhandledRejection', () => undefined);
    void cleanup().catch(() => undefined).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
}

export class Lab {
  private readonly namespaces: string[] = [];
  private readonly dirs: string[] = [];
  private readonly processes: ChildProcess[] = [];
  private readonly stopListening: () => void;

  constructor(readonly prefix: string) {
    if (!NAME.test(prefix)) throw new Error(`lab prefix ${JSON.stringify(prefix)} must be lowercase letters, digits and '-'`);
    this.stopListening = cleanupOnInterrupt(() => this.cleanup());
  }

  /** Creates namespace <prefix>-<name> with lo up; returns its path. */
  async netns(name: string): Promise<string> {
    const full = `${this.prefix}-${name}`;
    if (!NAME.test(full)) throw new Error(`namespace name ${JSON.stringify(full)} is not valid`);
    const ns = await linux.createNetns(full);
    this.namespaces.push(full);
    await ns.apply([{ op: 'link-set', name: 'lo', up: true }]);
    return ns.path!;
  }

  /** A veth pair between two lab namespaces (given by path), with addresses in CIDR notation. */
  async link(a: { netns: string; ifName: string; address?: string }, b: { netns: string; ifName: string; address?: string }): Promise<void> {
    // Created inside namespace a, the peer goes straight into b: the root namespace never holds either end.
    const side = (x: typeof a): NetOp[] => [{ op: 'link-set', name: x.ifName, up: true }, ...(x.address ? [{ op: 'addr-add', dev: x.ifName, address: x.address } as const] : [])];
    await linux.at(a.netns).apply([{ op: 'veth-add', name: a.ifName, peer: b.ifName, peerNetns: b.netns }, ...side(a)]);
    await linux.at(b.netns).apply(side(b));
  }

  dir(name: string): string {
    const d = mkdtempSync(join(tmpdir(), `${this.prefix}-${name}-`));
    this.dirs.push(d);
    return d;
  }

  /** Starts the echo HTTP server inside `netns`; resolves once it listens. Stopped by cleanup(). */
  async echoServer(netns: string, port: number, name: string): Promise<ChildProcess> {
    const child = startChild([process.execPath, '-e', ECHO_SERVER, String(port), name], netns);
    this.processes.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`echo server in ${netns} exited with code ${code}`)));
    });
    return child;
  }

  /** An HTTP GET from inside `netns` (given up after `timeoutMs`, 3 s); resolves with the body. */
  httpGet(netns: string, url: string, timeoutMs = 3000): Promise<string> {
    return linux.at(netns).exec([process.execPath, '-e', HTTP_GET, url, String(timeoutMs)]);
  }

  exec(netns: string, argv: string[], opts: { input?: string } = {}): Promise<string> {
    return linux.at(netns).exec(argv, opts.input);
  }

  async cleanup(): Promise<void> {
    this.stopListening();
    for (const p of this.processes.splice(0)) p.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0).reverse()) {
      await linux.deleteNetns(ns).catch(() => undefined);
    }
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

export async function withLab<T>(prefix: string, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = new Lab(prefix);
  try {
    return await fn(lab);
  } finally {
    await lab.cleanup();
  }
}
