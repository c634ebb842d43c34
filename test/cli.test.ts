// The kubewire command as a user runs it: install, cnitool-like verbs, and errors that are
// one clear line (never a stack trace).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withLab } from '../src/lab/lab.ts';
import { NOT_ROOT, sh } from './helpers.ts';

const CLI = new URL('../bin/kubewire.js', import.meta.url).pathname;

function kubewire(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('cni install writes executable plugins that answer VERSION quickly', async () => {
  await withLab('kwt-cli', async (lab) => {
    const dir = join(lab.dir('opt'), 'cni', 'bin');
    const r = kubewire('cni', 'install', '--dir', dir);
    assert.equal(r.code, 0, r.stderr);
    for (const name of ['bridge', 'host-local', 'loopback', 'portmap']) {
      assert.ok(statSync(join(dir, name)).mode & 0o111, `${name} is not executable`);
      const v = spawnSync(join(dir, name), [], { env: { CNI_COMMAND: 'VERSION', PATH: process.env.PATH }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
      assert.equal(v.status, 0, v.stderr);
      assert.deepEqual(JSON.parse(v.stdout).supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    }
    assert.match(readFileSync(join(dir, 'bridge'), 'utf8'), /kubewire-cni-plugin/);
    // Installing again replaces the files in place.
    assert.equal(kubewire('cni', 'install', '--dir', dir).code, 0);
  });
});

test('errors are one line naming the problem, exit code 1, no stack trace', async () => {
  await withLab('kwt-clierr', async (lab) => {
    const bad = lab.dir('bad');
    writeFileSync(join(bad, '10-bad.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [] }));
    const empty = lab.dir('empty');
    const cases: Array<[string[], RegExp]> = [
      [['cni', 'add', '/var/run/netns/kwt-none', '--conf-dir', '/nonexistent-kw'], /cannot read CNI config directory \/nonexistent-kw/],
      [['cni', 'add', '/var/run/netns/kwt-none', '--conf-dir', empty], /cni plugin not initialized: no network configuration in/],
      [['cni', 'add', '/var/run/netns/kwt-none', '--conf-dir', bad], /10-bad\.conflist: "plugins" must be a non-empty list \(CNI error code 7\)/],
      [['cni', 'install'], /required option '--dir <dir>'/],
      [['cni', 'add', '/x', '--conf-dir', bad, '--cap-args', '{bad'], /--cap-args is not valid JSON/],
      [['cni', 'add', '/x', '--conf-dir', bad, '--container-id', 'a b'], /container ID "a b" must be alphanumeric/],
    ];
    for (const [args, re] of cases) {
      const r = kubewire(...args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'stack trace printed');
    }
  });
});

describe('cni add/check/del through the CLI', { skip: NOT_ROOT }, () => {
  test('a pod added, checked and deleted like cnitool does', async () => {
    await withLab('kwt-clinet', async (lab) => {
      const node = await lab.netns('node');
      const pod = await lab.netns('pod');
      const bin = lab.dir('bin');
      assert.equal(kubewire('cni', 'install', '--dir', bin).code, 0);
      const confDir = lab.dir('netd');
      writeFileSync(join(confDir, '10-net.conflist'), JSON.stringify({ cniVersion: '1.1.0', name: 'clinet', plugins: [{ type: 'bridge', bridge: 'kwbr10', isGateway: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.15.0/24' }]], dataDir: lab.dir('ipam') } }] }));
      const cache = lab.dir('cache');
      const common = ['--conf-dir', confDir, '--bin-dir', bin, '--cache-dir', cache, '--host-netns', node, '--container-id', 'cli1'];
      const add = kubewire('cni', 'add', pod, ...common);
      assert.equal(add.code, 0, add.stderr);
      assert.equal(JSON.parse(add.stdout).ips[0].address, '10.100.15.2/24');
      assert.equal(kubewire('cni', 'check', pod, ...common).code, 0);
      assert.match(await sh(pod, ['ip', 'addr', 'show', 'eth0']), /10\.100\.15\.2\/24/);
      assert.equal(kubewire('cni', 'del', pod, ...common).code, 0);
      assert.ok(!existsSync(join(cache, 'results', 'clinet-cli1-eth0')));
      const again = kubewire('cni', 'check', pod, ...common);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /no cached result for cli1\/eth0.*\(CNI error code 3\)/);
    });
  });
});
