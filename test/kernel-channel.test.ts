// The channel to a cluster's own kernel, without one (no root): frames split from any
// chunking and from console noise; which command lines go to the guest; the options `up`
// passes on; a session through a kernel host's socket, played by a stand-in guest end.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { withoutOptions } from '../src/cli/cluster.ts';
import { clusterFlag, runInKernel, runProgramInKernel, runsInGuest } from '../src/kernel/client.ts';
import { encodeFrame, forwardedEnv, FrameReader, type Frame } from '../src/kernel/frames.ts';
import { exitReported, WarmCli } from '../src/kernel/warm.ts';
import { becomesDaemon } from '../src/daemon/here.ts';

test('frames: split across chunks, noise on the line set aside, bytes kept exact in base64', () => {
  const frames: Frame[] = [];
  const noise: string[] = [];
  const r = new FrameReader((f) => frames.push(f), (l) => noise.push(l));
  const bytes = Buffer.from([0, 1, 10, 13, 255]);
  const text = `[  3.1] random kernel message\r\n${encodeFrame({ t: 'out', s: 4, d: bytes.toString('base64') })}${encodeFrame({ t: 'exit', s: 4, code: 7 })}`;
  for (let i = 0; i < text.length; i += 5) r.push(text.slice(i, i + 5));
  assert.deepEqual(noise, ['[  3.1] random kernel message']);
  assert.equal(frames.length, 2);
  assert.deepEqual(Buffer.from((frames[0] as { d: string }).d, 'base64'), bytes);
  assert.deepEqual(frames[1], { t: 'exit', s: 4, code: 7 });
});

test('which command lines run in the guest; the cluster they name; what up passes on', () => {
  assert.equal(clusterFlag(['get', 'pods', '--cluster', 'a']), 'a');
  assert.equal(clusterFlag(['get', 'pods', '--cluster=b']), 'b');
  assert.equal(clusterFlag(['exec', 'p', '--', 'x', '--cluster', 'c']), undefined, 'after -- it is the command');
  assert.equal(runsInGuest(['describe', 'service', 's'], true), true, "describe service reads the nodes' tables in there");
  for (const d of [['describe', 'pod', 'p'], ['describe', 'node', 'n'], ['describe', 'no/n', '--cluster', 'c']]) assert.equal(runsInGuest(d, true), false, `${d.join(' ')} runs on the host: the guest's tools read the kernel for it (describe-kernel.ts)`);
  for (const api of [['logs', 'p', '-f'], ['get', 'pods'], ['apply', '-f', 'x'], ['delete', 'pod', 'p'], ['scale', 'deploy/web', '--replicas=2'], ['wait', '--for=condition=Ready', 'pod', 'p'], ['rollout', 'status', 'deploy/web']]) {
    assert.equal(runsInGuest(api, true), false, `${api[0]} talks only to the API: the host runs it through the relay`);
  }
  assert.equal(runsInGuest(['exec', 'p', '--', 'ls'], false), false, 'a cluster on the host kernel');
  assert.equal(runsInGuest(['up'], true), true, 'up of an existing cluster restarts its daemon in there');
  for (const host of [['down'], ['cni', 'add'], ['demo'], ['get', '--help']]) assert.equal(runsInGuest(host, true), false, host.join(' '));
  assert.equal(runsInGuest(['describe', 'service', 's', '--', '-h'], true), true, "after -- an -h is not kubewire's");
  assert.equal(runsInGuest(['exec', 'p', '--', 'ls'], true), false, 'exec is resolved on the host; the guest starts the program itself');
  assert.deepEqual(withoutOptions(['--nodes', '2', '--kernel', 'uml', '--kernel-memory=512', '--proxy-mode', 'ipvs'], ['--kernel', '--kernel-memory']), ['--nodes', '2', '--proxy-mode', 'ipvs']);
  assert.deepEqual(Object.keys(forwardedEnv({ KUBEWIRE_CLUSTER: 'a', KUBEWIRE_STATE_DIR: '/x', PATH: '/bin', TERM: 'xterm' })).sort(), ['KUBEWIRE_CLUSTER', 'TERM']);
});

test("a session through the kernel host's socket: the command line, stdin to its end, output, an interrupt, the exit status", async () => {
  const state = mkdtempSync(join(tmpdir(), 'kwt-channel-'));
  const prev = process.env.KUBEWIRE_STATE_DIR;
  process.env.KUBEWIRE_STATE_DIR = state;
  mkdirSync(join(state, 'c1'));
  writeFileSync(join(state, 'c1', 'kernel.json'), '{"kernel":"uml"}');
  const seen: Frame[] = [];
  // The guest's side, played here: echo stdin back on stdout, exit 3 at its end.
  const server = createServer((socket) => {
    const r = new FrameReader((f) => {
      seen.push(f);
      if (f.t === 'run') socket.write(encodeFrame({ t: 'exit', code: 5 }));
      if (f.t === 'in') socket.write(encodeFrame({ t: 'out', d: f.d }));
      if (f.t === 'eof') {
        socket.write(encodeFrame({ t: 'err', d: Buffer.from('done\n').toString('base64') }));
        socket.write(encodeFrame({ t: 'exit', code: 3 }));
      }
    });
    socket.on('data', (b) => r.push(b));
  });
  await new Promise<void>((resolve) => server.listen(join(state, 'c1', 'kernel.sock'), resolve));
  try {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: string[] = [];
    const err: string[] = [];
    stdout.on('data', (b) => out.push(String(b)));
    stderr.on('data', (b) => err.push(String(b)));
    const code = runInKernel('c1', ['exec', 'p', '--', 'cat'], { stdin, stdout, stderr }, '/some/dir');
    // Interrupted once the session is open (a fixed 50 ms was too short on a loaded machine).
    for (let i = 0; i < 500 && !seen.some((f) => f.t === 'start'); i++) await new Promise((r) => setTimeout(r, 10));
    process.emit('SIGINT');
    stdin.end('hello\n');
    assert.equal(await code, 3);
    assert.equal(out.join(''), 'hello\n');
    assert.equal(err.join(''), 'done\n');
    const start = seen.find((f) => f.t === 'start') as Extract<Frame, { t: 'start' }>;
    assert.deepEqual(start.argv, ['exec', 'p', '--', 'cat']);
    assert.equal(start.cwd, '/some/dir');
    assert.ok(seen.some((f) => f.t === 'signal' && f.sig === 'SIGINT'), 'the interrupt went through');
    assert.equal(process.listenerCount('SIGINT'), 0, 'the handler is gone with the session');
    await assert.rejects(runInKernel('nope', ['get', 'pods'], { stdin, stdout, stderr }), /the kernel of cluster nope is not running/);
    // exec as the host resolves it: the guest is told the program, its namespace and the pod's view, and starts it itself.
    const program = { argv: ['id', '-u'], env: { POD_NAME: 'p' }, netns: '/var/run/netns/x', missing: 'pod p is not running', view: '/run/kubewire/c1/nodes/n/pods/p/etc' };
    assert.equal(await runProgramInKernel('c1', program, { stdin: new PassThrough(), stdout, stderr }, '/w'), 5);
    const run = seen.find((f) => f.t === 'run') as Extract<Frame, { t: 'run' }>;
    assert.deepEqual({ argv: run.argv, netns: run.netns, missing: run.missing, view: run.view, cwd: run.cwd, pod: run.env.POD_NAME }, { argv: ['id', '-u'], netns: program.netns, missing: program.missing, view: program.view, cwd: '/w', pod: 'p' });
  } finally {
    server.close();
    if (prev === undefined) delete process.env.KUBEWIRE_STATE_DIR;
    else process.env.KUBEWIRE_STATE_DIR = prev;
    rmSync(state, { recursive: true, force: true });
  }
});

test('a warm process reports its exit status on fd 3 with its output ended, before it has torn itself down (UML takes seconds for that)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-warm-'));
  try {
    // The "CLI": takes its request, prints, exits 4; an exit handler after the report plays the slow teardown.
    const script = join(dir, 'cli.mts');
    writeFileSync(script, `import { takeWarmRequest } from ${JSON.stringify(join(import.meta.dirname, '..', 'src', 'kernel', 'warm.ts'))};
await takeWarmRequest();
process.stdout.write(process.argv.slice(2).join(' ') + '\\n');
process.exitCode = 4;
process.on('exit', () => { const t = Date.now(); while (Date.now() - t < 1500); console.log('after the report: not seen'); });
`);
    const warm = new WarmCli([process.execPath, '--import', import.meta.resolve('tsx'), script], { ...process.env }); // it starts in /
    warm.prepare();
    const child = warm.take({ argv: ['hello', 'there'], cwd: dir, env: {} })!;
    const out: string[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(String(b)));
    const reported = new Promise<{ code: number; at: number }>((resolve) => exitReported(child, (code) => resolve({ code, at: Date.now() })));
    const ended = new Promise<number>((resolve) => child.stdout!.once('end', () => resolve(Date.now())));
    const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now())));
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const r = await reported;
    assert.equal(r.code, 4);
    assert.ok((await ended) <= (await exited) - 1000, 'stdout ended a second before the process did');
    assert.equal(out.join(''), 'hello there\n');
    await closed; // its 'close' still comes (fd 3 let go)
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a warm process that runs on after its command (up going on as the daemon): its status on fd 3 when the command is done, later output in its log, the process alive', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-warm-'));
  try {
    const script = join(dir, 'cli.mts');
    const log = join(dir, 'daemon.log');
    writeFileSync(script, `import { commandDone, stayAfterCommand, takeWarmRequest } from ${JSON.stringify(join(import.meta.dirname, '..', 'src', 'kernel', 'warm.ts'))};
await takeWarmRequest();
stayAfterCommand(${JSON.stringify(log)});
process.stdout.write('up done\\n');
commandDone(0);
process.stderr.write('daemon: still here\\n');
setTimeout(() => process.exit(0), 1500);
`);
    const warm = new WarmCli([process.execPath, '--import', import.meta.resolve('tsx'), script], { ...process.env });
    warm.prepare();
    const child = warm.take({ argv: ['up'], cwd: dir, env: {} })!;
    const out: string[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(String(b)));
    const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now())));
    const r = await new Promise<{ code: number; at: number }>((resolve) => exitReported(child, (code) => resolve({ code, at: Date.now() })));
    assert.equal(r.code, 0);
    assert.ok(r.at <= (await exited) - 1000, 'the status came a second before the process ended');
    assert.equal(out.join(''), 'up done\n');
    assert.equal(readFileSync(log, 'utf8'), 'daemon: still here\n', 'what it writes after its command goes to its log');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('up becomes the daemon only when asked for that cluster and started as its daemon (its command line names it)', () => {
  const asDaemon = ['/usr/bin/node', '--expose-gc', '/k/dist/kubewire.js', 'daemon', '--cluster', 'c1', ''];
  assert.equal(becomesDaemon('c1', { KUBEWIRE_DAEMON_HERE: 'c1' }, asDaemon), true);
  assert.equal(becomesDaemon('c2', { KUBEWIRE_DAEMON_HERE: 'c1' }, asDaemon), false, 'another cluster');
  assert.equal(becomesDaemon('c1', {}, asDaemon), false, 'not asked');
  assert.equal(becomesDaemon('c1', { KUBEWIRE_DAEMON_HERE: 'c1' }, ['/usr/bin/node', '/k/dist/kubewire.js', '']), false, 'a plain warm process: its command line would not say daemon');
  assert.equal(becomesDaemon('c1', { KUBEWIRE_DAEMON_HERE: 'c1' }, ['/usr/bin/node', '/k/dist/kubewire.js', 'daemon', '--cluster', 'c2', '']), false, "another cluster's daemon");
});
