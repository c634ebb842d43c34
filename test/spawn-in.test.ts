// A program started in a pod's namespaces in one step (the native helper's spawnIn, what a
// UML guest's `exec` uses): the same program, environment, working directory, exit statuses,
// session and view of names as nsenter + unshare + a shell gave, and the host's untouched.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { packageRoot } from '../src/state/paths.ts';
import { loadSpawnIn, resolveProgram, startIn, StartError, type PipedProcess } from '../src/supervisor/spawn-in.ts';
import { Lab } from '../src/lab/lab.ts';
import { NOT_ROOT } from './helpers.ts';

const addon = loadSpawnIn(join(packageRoot(), 'build', 'Release', 'kubewire_netns.node'));
const NO_ADDON = addon ? false : 'the native helper is not built with spawnIn (npm install builds it)';

/** Output, error output and how a started program ended. */
function finished(child: PipedProcess, input = ''): Promise<{ out: string; err: string; code: number | null; signal: string | null }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  child.stdin!.on('error', () => {});
  child.stdin!.end(input);
  return new Promise((resolve) => child.on('close', (code: number | null, signal: string | null) => resolve({ out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString(), code, signal })));
}

const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', KW_X: 'x y' };

describe('spawnIn', { skip: NO_ADDON }, () => {
  test('argv, environment (only the one given), working directory, input, exit status', async () => {
    const r = await finished(startIn(addon!, ['sh', '-c', 'echo "$0|$1|$KW_X|$(pwd)|${HOME-unset}"; cat; exit 3', 'a b'], { cwd: '/tmp', env }), 'from stdin');
    assert.deepEqual(r, { out: 'a b||x y|/tmp|unset\nfrom stdin', err: '', code: 3, signal: null });
  });

  test('a session of its own (signals to -pid reach what it runs), default signal dispositions, none blocked', async () => {
    const child = startIn(addon!, ['sh', '-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status; ps -o pid=,pgid=,sid= -p $$; sleep 30 & wait'], { cwd: '/', env });
    const out: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    while (!/\d+\s+\d+\s+\d+/.test(Buffer.concat(out).toString())) await new Promise((r) => setTimeout(r, 10));
    const ended = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    process.kill(-child.pid!, 'SIGTERM');
    assert.deepEqual(await ended, { code: null, signal: 'SIGTERM' });
    const text = Buffer.concat(out).toString();
    assert.match(text, /^SigBlk:\s*0+$/m);
    assert.match(text, /^SigIgn:\s*0+$/m, 'SIGPIPE is not left ignored as Node has it');
    const [pid, pgid, sid] = text.trim().split('\n').at(-1)!.trim().split(/\s+/).map(Number);
    assert.equal(pid, child.pid);
    assert.equal(pgid, child.pid);
    assert.equal(sid, child.pid);
  });

  test('a program not found is 127 as runc says it; a working directory that is not there is a set-up failure (126)', () => {
    assert.throws(() => startIn(addon!, ['kubewire-no-such-program'], { cwd: '/', env }), (e: unknown) => e instanceof StartError && e.status === 127 && e.message === 'exec: "kubewire-no-such-program": executable file not found in $PATH');
    assert.throws(() => startIn(addon!, ['/nonexistent/prog'], { cwd: '/', env }), (e: unknown) => e instanceof StartError && e.status === 127 && /\/nonexistent\/prog: No such file/.test(e.message));
    assert.throws(() => startIn(addon!, ['true'], { cwd: '/nonexistent-dir', env }), (e: unknown) => e instanceof StartError && e.status === 126 && /nonexistent-dir: No such file/.test(e.message));
    assert.equal(resolveProgram('sh', '/nonexistent:/bin'), '/bin/sh');
  });

  test('200 at once: all answer', async () => {
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => finished(startIn(addon!, ['echo', String(i)], { cwd: '/', env }))));
    assert.deepEqual(rs.map((r) => r.out), Array.from({ length: 200 }, (_, i) => `${i}\n`));
  });
});

describe('spawnIn in a pod\'s namespaces', { skip: NOT_ROOT || NO_ADDON }, () => {
  const lab = new Lab(`kwt-spin${process.pid % 100000}`);
  const view = mkdtempSync(join(tmpdir(), 'kwt-view-'));
  after(async () => {
    await lab.cleanup();
    rmSync(view, { recursive: true, force: true });
  });
  const idOf = (path: string) => `net:[${statSync(path).ino}]`;

  test('its network namespace, the pod\'s resolv.conf, hosts and hostname; this process and the host keep theirs', async () => {
    const ns = await lab.netns('pod');
    writeFileSync(join(view, 'resolv.conf'), 'nameserver 10.96.0.10\n');
    writeFileSync(join(view, 'hosts'), '127.0.0.1\tlocalhost\n10.244.0.9\tweb-0\n');
    writeFileSync(join(view, 'hostname'), 'web-0\n');
    const before = { net: readlinkSync('/proc/self/ns/net'), mnt: readlinkSync('/proc/self/ns/mnt'), hostname: hostname(), resolv: readFileSync('/etc/resolv.conf', 'utf8') };
    const r = await finished(startIn(addon!, ['sh', '-c', 'readlink /proc/self/ns/net; hostname; cat /etc/resolv.conf /etc/hosts'], { cwd: '/', env, netns: ns, view: { dir: view, hostname: 'web-0' } }));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${idOf(ns)}\nweb-0\nnameserver 10.96.0.10\n127.0.0.1\tlocalhost\n10.244.0.9\tweb-0\n`);
    assert.deepEqual({ net: readlinkSync('/proc/self/ns/net'), mnt: readlinkSync('/proc/self/ns/mnt'), hostname: hostname(), resolv: readFileSync('/etc/resolv.conf', 'utf8') }, before);
  });

  test('a view missing a file /etc has, or a namespace that is gone: a set-up failure (126) naming it', async () => {
    const ns = await lab.netns('gone');
    const empty = mkdtempSync(join(tmpdir(), 'kwt-view-'));
    try {
      assert.throws(() => startIn(addon!, ['true'], { cwd: '/', env, netns: ns, view: { dir: empty, hostname: 'x' } }), (e: unknown) => e instanceof StartError && e.status === 126 && /^\/etc\/(resolv\.conf|hosts|hostname): No such file/.test(e.message));
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    assert.throws(() => startIn(addon!, ['true'], { cwd: '/', env, netns: '/run/netns/kwt-no-such-ns' }), (e: unknown) => e instanceof StartError && e.status === 126 && /kwt-no-such-ns: No such file/.test(e.message));
  });
});
