// The C shim (native/cni-shim.c) and the plugin server (src/cni/server): the wire format;
// the same answers (stdout, exit code, error JSON, files on disk) with and without a server;
// a server that declines or goes away mid-call; parallel calls; a client killed mid-call.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { builtShimPath, installPlugins } from '../src/cni/install.ts';
import { isKubewirePlugin } from '../src/cni/invoke/marker.ts';
import { decide, namespaceId, relativePaths } from '../src/cni/server/server.ts';
import { CniServer } from '../src/cni/server/server.ts';
import { decodeAnswer, decodeRequest, encodeAnswer, encodeRequest, ProtocolError, type ShimRequest } from '../src/cni/server/protocol.ts';
import { linux } from '../src/dataplane/linux/host.ts';
import { withLab } from '../src/lab/lab.ts';
import { NOT_ROOT, sh } from './helpers.ts';

const shim = builtShimPath();
const noShim = shim ? false : 'the CNI shim is not built (npm install builds build/Release/kubewire-cni-shim)';
const scratch = mkdtempSync(join(tmpdir(), 'kwt-shim-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const request = (over: Partial<ShimRequest> = {}): ShimRequest => ({
  plugin: 'host-local', pid: 42, netns: '4:100', mntns: '4:200', cwd: '/', env: { CNI_COMMAND: 'ADD', CNI_ARGS: 'A=1;B=x=y' }, stdin: Buffer.from('{"cniVersion":"1.0.0"}'), ...over,
});

describe('wire format', () => {
  test('a request round-trips, whole only when every byte is there', () => {
    const req = request({ env: { CNI_COMMAND: 'ADD', CNI_ARGS: 'K8S_POD_NAME=web;IgnoreUnknown=1', EMPTY: '' } });
    const bytes = encodeRequest(req);
    assert.deepEqual(decodeRequest(bytes), req);
    for (const cut of [1, 7, 11, bytes.length - 1]) assert.equal(decodeRequest(bytes.subarray(0, cut)), undefined, `cut at ${cut}`);
    assert.throws(() => decodeRequest(Buffer.concat([bytes, Buffer.from('x')])), ProtocolError);
    assert.throws(() => decodeRequest(Buffer.from('GET / HTTP/1.1\r\n')), /not a kubewire CNI shim request/);
    const huge = Buffer.from(bytes);
    huge.writeUInt32LE(0xffffffff, 7);
    assert.throws(() => decodeRequest(huge), /request records of 4294967295 bytes/);
    assert.throws(() => decodeRequest(encodeRequest(request({ plugin: '' }))), /without its plugin name/);
  });

  test('answers: taken with code, stdout and stderr; declined', () => {
    const a = Buffer.concat([Buffer.from('A'), encodeAnswer(1, '{"code":4,"msg":"é"}', 'log\n')]);
    assert.deepEqual(decodeAnswer(a), { taken: true, code: 1, stdout: '{"code":4,"msg":"é"}', stderr: 'log\n' });
    assert.equal(decodeAnswer(a.subarray(0, a.length - 1)), undefined);
    assert.deepEqual(decodeAnswer(Buffer.from('F')), { taken: false });
  });
});

describe('what the server takes', () => {
  const self = { netns: '4:100', mntns: '4:200', cwd: '/' };
  test('its own plugins, in its filesystem; the caller\'s namespace as host unless it is the server\'s', () => {
    assert.deepEqual(decide(request(), self), { run: true, sameNetns: true });
    assert.deepEqual(decide(request({ netns: '4:101' }), self), { run: true, sameNetns: false });
    assert.equal(decide(request({ plugin: 'macvlan' }), self).run, false);
    assert.equal(decide(request({ plugin: 'toString' }), self).run, false);
    assert.equal(decide(request({ mntns: '4:201' }), self).run, false);
    assert.equal(decide(request({ mntns: '' }), self).run, false);
    assert.equal(decide(request({ netns: '' }), self).run, false);
  });

  test('relative paths only from the same working directory', () => {
    const rel = request({ cwd: '/var/lib', env: { CNI_NETNS: 'netns/pod', CNI_PATH: '/opt/cni/bin:bin' }, stdin: Buffer.from('{"ipam":{"dataDir":"state"}}') });
    assert.deepEqual(relativePaths(rel), ['CNI_NETNS', 'CNI_PATH', 'ipam.dataDir']);
    assert.match((decide(rel, self) as { why: string }).why, /relative paths \(CNI_NETNS, CNI_PATH, ipam\.dataDir\)/);
    assert.equal(decide({ ...rel, cwd: '/' }, self).run, true);
    assert.deepEqual(relativePaths(request({ env: { CNI_NETNS: '/var/run/netns/x' }, stdin: Buffer.from('not json') })), []);
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Executes `path` as a runtime does. */
function exec(path: string, env: Record<string, string>, stdin: string, netns?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const argv = netns ? ['nsenter', `--net=${netns}`, '--', path] : [path];
    const child = spawn(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('the shim', { skip: noShim }, () => {
  // Three installations: the Node.js executables, the shim without a server, the shim with one.
  const node = join(scratch, 'node-bin');
  const alone = join(scratch, 'alone-bin');
  const served = join(scratch, 'served-bin');
  const socket = join(scratch, 'run', 'cni.sock');
  installPlugins({ dir: node, shim: false });
  installPlugins({ dir: alone, shim: shim as string, socket: join(scratch, 'nobody.sock') });
  installPlugins({ dir: served, shim: shim as string, socket });
  const server = new CniServer({ socket, dataplane: linux, log: () => undefined });
  after(() => server.close());

  test('is recognised as kubewire\'s by the runtime (in-process calls)', () => {
    assert.ok(isKubewirePlugin(join(served, 'bridge')));
    assert.ok(!isKubewirePlugin('/bin/true'));
  });

  const hostLocal = (dataDir: string, extra: object = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'shimnet', type: 'host-local', ipam: { type: 'host-local', ranges: [[{ subnet: '10.123.0.0/24' }]], dataDir }, ...extra });
  const env = (command: string, id: string, over: Record<string, string> = {}) => ({ CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', ...over });

  test('answers as the Node.js executable does, with a server and without: results, errors, exit codes, files', async () => {
    await server.listen();
    const cases: Array<[string, Record<string, string>, string]> = [
      ['VERSION', { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}'],
      ['ADD', env('ADD', 'c1'), 'DATA'],
      ['ADD again: same IP', env('ADD', 'c1'), 'DATA'],
      ['CHECK', env('CHECK', 'c1'), 'DATA'],
      ['missing CNI_IFNAME (code 4)', env('ADD', 'c2', { CNI_IFNAME: '' }), 'DATA'],
      ['unknown command (code 4)', env('FROB', 'c2'), 'DATA'],
      ['not JSON (code 6)', env('ADD', 'c2'), '{not json'],
      ['unsupported version (code 1)', env('ADD', 'c2'), '{"cniVersion":"9.9.9","name":"x","type":"host-local"}'],
      ['DEL', env('DEL', 'c1'), 'DATA'],
      ['DEL again', env('DEL', 'c1'), 'DATA'],
    ];
    const runs: Record<string, Run[]> = {};
    const disk: Record<string, string[]> = {};
    for (const [tag, dir] of [['node', node], ['alone', alone], ['served', served]] as const) {
      const dataDir = join(scratch, `ipam-${tag}`);
      runs[tag] = [];
      for (const [label, e, stdin] of cases) {
        const r = await exec(join(dir, 'host-local'), e, stdin === 'DATA' ? hostLocal(dataDir) : stdin);
        runs[tag]!.push(r);
        if (label === 'ADD again: same IP') disk[tag] = readdirSync(join(dataDir, 'shimnet')).sort();
      }
    }
    for (const tag of ['alone', 'served']) {
      cases.forEach(([label], i) => {
        const [want, got] = [runs.node![i]!, runs[tag]![i]!];
        assert.equal(got.code, want.code, `${tag}: ${label}: exit code`);
        assert.equal(got.stdout, want.stdout, `${tag}: ${label}: stdout`);
      });
      assert.deepEqual(disk[tag], disk.node, `${tag}: host-local's files`);
    }
    assert.deepEqual(disk.node, ['10.123.0.2', 'last_reserved_ip.0', 'lock']);
    assert.equal(JSON.parse(runs.served![4]!.stdout).code, 4);
    assert.equal(JSON.parse(runs.served![6]!.stdout).code, 6);
    assert.ok(server.stats.served >= cases.length, `the server served the calls (${server.stats.served})`);
  });

  test('a server that declines: the shim runs the plugin itself; one that goes away mid-call: code 11', async () => {
    /** An installation whose "server" answers every call with `answer`; closed by the returned function. */
    const fake = async (answer: string): Promise<{ dir: string; close: () => Promise<unknown> }> => {
      const dir = join(scratch, `fake-${answer}`);
      const sock = join(dir, 'fake.sock');
      installPlugins({ dir, shim: shim as string, socket: sock });
      const srv: Server = createServer((s) => s.once('data', () => s.end(answer)));
      await new Promise<void>((r) => srv.listen(sock, r));
      return { dir, close: () => new Promise((r) => srv.close(r)) };
    };
    const dataDir = join(scratch, 'ipam-fake');
    const declines = await fake('F');
    try {
      const r = await exec(join(declines.dir, 'host-local'), env('ADD', 'f1'), hostLocal(dataDir));
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(JSON.parse(r.stdout).ips[0].address, '10.123.0.2/24');
    } finally {
      await declines.close();
    }
    const goes = await fake('A');
    try {
      const r = await exec(join(goes.dir, 'host-local'), env('ADD', 'f2'), hostLocal(dataDir));
      assert.equal(r.code, 1);
      assert.deepEqual(JSON.parse(r.stdout), { code: 11, msg: 'kubewire-cni-shim: the plugin server went away during the call; try again', details: '' });
    } finally {
      await goes.close();
    }
    const dir = declines.dir;
    // A stale socket file (its server gone): the plugin runs as without a server.
    const r = await exec(join(dir, 'host-local'), env('DEL', 'f1'), hostLocal(dataDir));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(readdirSync(join(dataDir, 'shimnet')).filter((f) => /^\d/.test(f)), []);
  });

  test('parallel calls get distinct addresses (host-local\'s lock holds within the server)', async () => {
    const dataDir = join(scratch, 'ipam-parallel');
    const ids = Array.from({ length: 24 }, (_, i) => `par${i}`);
    const adds = await Promise.all(ids.map((id) => exec(join(served, 'host-local'), env('ADD', id), hostLocal(dataDir))));
    for (const r of adds) assert.equal(r.code, 0, r.stdout);
    const ips = adds.map((r) => JSON.parse(r.stdout).ips[0].address);
    assert.equal(new Set(ips).size, ids.length, `duplicates among ${ips.join(' ')}`);
    assert.equal(readdirSync(join(dataDir, 'shimnet')).filter((f) => /^\d/.test(f)).length, ids.length);
    const dels = await Promise.all(ids.map((id) => exec(join(served, 'host-local'), env('DEL', id), hostLocal(dataDir))));
    for (const r of dels) assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(readdirSync(join(dataDir, 'shimnet')).filter((f) => /^\d/.test(f)), []);
  });

  test('clients that go mid-call: the server finishes the call, the next call for that attachment waits for it', async () => {
    const dataDir = join(scratch, 'ipam-killed');
    const send = (bytes: Buffer): Promise<void> =>
      new Promise((resolve, reject) => {
        const c = createConnection(socket, () => {
          c.write(bytes);
          c.destroy(); // gone before the answer
          resolve();
        });
        c.on('error', reject);
      });
    const req = (command: string, id: string): ShimRequest => ({ plugin: 'host-local', pid: process.pid, netns: namespaceId('/proc/self/ns/net'), mntns: namespaceId('/proc/self/ns/mnt'), cwd: process.cwd(), env: env(command, id), stdin: Buffer.from(hostLocal(dataDir)) });
    const before = server.stats.served;
    await send(encodeRequest(req('ADD', 'gone')));
    // Half a request, and garbage: dropped, nothing done.
    await send(encodeRequest(req('ADD', 'half')).subarray(0, 30));
    await send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    // The DEL of the abandoned ADD comes after it: nothing is left.
    const del = await exec(join(served, 'host-local'), env('DEL', 'gone'), hostLocal(dataDir));
    assert.equal(del.code, 0, del.stdout);
    assert.equal(server.stats.served, before + 2);
    assert.deepEqual(readdirSync(join(dataDir, 'shimnet')).filter((f) => /^\d/.test(f)), []);
    // And the server still serves.
    const add = await exec(join(served, 'host-local'), env('ADD', 'after'), hostLocal(dataDir));
    assert.equal(JSON.parse(add.stdout).ips[0].address, '10.123.0.3/24');
  });

  test('a second server on the same socket is refused; a stale socket file is replaced; close removes it', async () => {
    const other = new CniServer({ socket, dataplane: linux });
    await assert.rejects(other.listen(), new RegExp(`the CNI plugin server socket ${socket} is served by another process`));
    // What a crashed server leaves: a socket file nobody answers on.
    const stale = join(scratch, 'stale', 'cni.sock');
    mkdirSync(dirname(stale));
    const crashed = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.equal(crashed.signal, 'SIGKILL');
    assert.ok(lstatSync(stale).isSocket());
    const fresh = new CniServer({ socket: stale, dataplane: linux });
    await fresh.listen();
    await fresh.close();
    assert.ok(!existsSync(stale));
  });

  test('a shim killed during a bridge ADD in a node: the DEL after it leaves nothing behind', { skip: NOT_ROOT }, async () => {
    await withLab('kwt-shimk', async (lab) => {
      const nodeNs = await lab.netns('node');
      const pod = await lab.netns('pod');
      const dataDir = lab.dir('ipam');
      const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'killnet', type: 'bridge', bridge: 'kwbr31', isGateway: true, ipMasq: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.31.0/24' }]], dataDir } });
      const e = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'killed', CNI_NETNS: pod, CNI_IFNAME: 'eth0', CNI_PATH: served };
      const child = spawn('nsenter', [`--net=${nodeNs}`, '--', join(served, 'bridge')], { env: { PATH: process.env.PATH ?? '', ...e }, stdio: ['pipe', 'ignore', 'ignore'] });
      child.stdin.end(conf);
      const before = server.stats.inFlight + server.stats.served;
      // Killed once the server has its call.
      for (let i = 0; i < 500 && server.stats.inFlight + server.stats.served === before; i++) await new Promise((r) => setTimeout(r, 2));
      child.kill('SIGKILL');
      const del = await exec(join(served, 'bridge'), { ...e, CNI_COMMAND: 'DEL' }, conf, nodeNs);
      assert.equal(del.code, 0, del.stdout);
      assert.doesNotMatch(await sh(nodeNs, ['ip', '-o', 'link', 'show', 'type', 'veth']), /veth/);
      assert.doesNotMatch(await sh(nodeNs, ['iptables-save', '-t', 'nat']), /CNI-/);
      assert.deepEqual(readdirSync(join(dataDir, 'killnet')).filter((f) => /^\d/.test(f)), []);
      // The server acted in the node's namespace, never in the test's.
      assert.doesNotMatch(await sh(pod, ['ip', '-o', 'link', 'show', 'eth0']).catch(() => 'absent'), /eth0@/);
    });
  });
});
