// Starting the dataplane's tools: kubewire-spawner, the native helper's posix_spawn and child_process give the
// same results (output, input, exit codes, signals, a namespace), and the helper's
// in-namespace calls (sysctls, link flags) touch that namespace alone.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { CommandError, spawnBySpawner, spawnNative, spawnNode, type RunOptions } from '../src/dataplane/linux/exec.ts';
import { linkRunning } from '../src/dataplane/linux/ip.ts';
import { netnsAddon, type NetnsAddon } from '../src/dataplane/linux/native.ts';
import { Lab } from '../src/lab/lab.ts';
import { NOT_ROOT } from './helpers.ts';

const ways: Array<[string, (argv: string[], opts?: RunOptions) => Promise<string>]> = [
  ['kubewire-spawner (a helper process)', (argv, opts = {}) => spawnBySpawner(argv, opts) ?? Promise.reject(new Error('kubewire-spawner is not built (npm install builds it)'))],
  ['posix_spawn (native helper)', (argv, opts = {}) => spawnNative(netnsAddon(), argv, opts)],
  ['child_process', (argv, opts = {}) => spawnNode(argv, opts)],
];

/** This process's children that have exited and not been reaped. */
function zombies(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      // pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z' && Number(ppid) === process.pid) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

for (const [way, run] of ways) {
  describe(`tools started by ${way}`, () => {
    test('output, input of 300 KB, exit codes with stderr, a missing tool, a signal', async () => {
      assert.equal(await run(['echo', 'hello']), 'hello\n');
      const big = 'abcdefghij'.repeat(30_000);
      assert.equal(await run(['cat'], { input: big }), big);
      await assert.rejects(run(['sh', '-c', 'echo broken >&2; exit 3']), (e: unknown) => e instanceof CommandError && e.exitCode === 3 && e.stderr === 'broken\n');
      await assert.rejects(run(['kubewire-no-such-tool']), (e: unknown) => e instanceof CommandError && e.exitCode === null && /No such file|ENOENT|EACCES/.test(e.message)); // EACCES: a PATH entry this user may not search
      await assert.rejects(run(['sh', '-c', 'kill -9 $$']), (e: unknown) => e instanceof CommandError && e.exitCode === null);
    });

    test('signals at their defaults in the tool (Node ignores SIGPIPE), and none blocked', async () => {
      const status = await run(['cat', '/proc/self/status']);
      const mask = (name: string) => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status)![1]}`);
      assert.equal((mask('SigIgn') >> 12n) & 1n, 0n, 'SIGPIPE (13) is not ignored');
      assert.equal(mask('SigBlk'), 0n);
    });

    test('200 at once: all answer, none left unreaped', async () => {
      const outs = await Promise.all(Array.from({ length: 200 }, (_, i) => run(['echo', String(i)])));
      assert.deepEqual(outs, Array.from({ length: 200 }, (_, i) => `${i}\n`));
      assert.deepEqual(zombies(), []);
    });
  });
}

describe('in a network namespace', { skip: NOT_ROOT }, () => {
  const lab = new Lab(`kwt-exec${process.pid % 100000}`);
  after(() => lab.cleanup());
  const own = () => readlinkSync('/proc/thread-self/ns/net');
  /** net:[inode] of the namespace kept at a path (a bind mount, not a link). */
  const idOf = (path: string) => `net:[${statSync(path).ino}]`;

  for (const [way, run] of ways) {
    test(`${way}: the tool runs inside it, this thread stays outside`, async () => {
      const ns = await lab.netns(way.startsWith('posix') ? 'native' : way.startsWith('kubewire') ? 'spawner' : 'node');
      const before = own();
      const links = await run(['ip', '-o', 'link', 'show'], { netns: ns });
      assert.deepEqual(links.trim().split('\n').map((l) => l.split(': ')[1]), ['lo']);
      assert.equal(await run(['readlink', '/proc/self/ns/net'], { netns: ns }).then((s) => s.trim()), idOf(ns));
      assert.notEqual(idOf(ns), before);
      assert.equal(own(), before);
    });
  }

  test('sysctls and link flags set and read inside it alone', async () => {
    const addon: NetnsAddon = netnsAddon();
    const ns = await lab.netns('sysctl');
    const key = 'net/ipv4/conf/all/arp_notify';
    const outside = readFileSync(`/proc/sys/${key}`, 'utf8').trim();
    const inside = outside === '1' ? '0' : '1';
    assert.equal(addon.sysctlIn(ns, key, inside), true);
    assert.equal(await spawnNative(addon, ['cat', `/proc/sys/${key}`], { netns: ns }).then((s) => s.trim()), inside);
    assert.equal(readFileSync(`/proc/sys/${key}`, 'utf8').trim(), outside, 'this namespace untouched');
    assert.equal(addon.sysctlIn(ns, 'net/ipv4/conf/nosuchlink/arp_notify', '1'), false);
    assert.throws(() => addon.sysctlIn(ns, '../../etc/passwd', 'x'), /path under \/proc\/sys/);

    await spawnNative(addon, ['ip', 'link', 'add', 'dummy-x', 'type', 'veth', 'peer', 'name', 'dummy-y'], { netns: ns });
    assert.equal(await linkRunning('dummy-x', ns), false);
    addon.linkUp(ns, 'dummy-x');
    addon.linkUp(ns, 'dummy-y');
    // Carrier reaches the flags a moment later (the kernel's link watch).
    let running = false;
    for (let i = 0; i < 40 && !running; i++) running = await linkRunning('dummy-x', ns) || (await new Promise((r) => setTimeout(r, 50)), false);
    assert.equal(running, true);
    assert.equal(await linkRunning('no-such-link', ns), false);
  });
});
