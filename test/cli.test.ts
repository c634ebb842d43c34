// The kubewire command as a user runs it: install, cnitool-like verbs, and errors that are
// one clear line (never a stack trace).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withLab } from '../src/lab/lab.ts';
import { makeCa, makeLeaf } from './certificates.ts';
import { NOT_ROOT, sh } from './helpers.ts';
import { resourceNamed } from '../src/api/resources.ts';
import type { KubeObject } from '../src/api/types.ts';
import { printTable } from '../src/cli/print.ts';

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
    for (const name of ['bridge', 'host-local', 'loopback', 'portmap', 'ptp']) {
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
      [['cni', 'install', '--bin-dir', join(bad, '10-bad.conflist', 'bin')], /^error: cannot write into \/.*10-bad\.conflist\/bin: a path component is not a directory\n$/],
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

test('create secret tls|generic as kubectl: the object printed with --dry-run=client, bad input refused in one line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-create-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa(dir);
  const leaf = makeLeaf(ca, 'web', 'web.example.com', 'rsa2048', 'pkcs1');
  const other = makeLeaf(ca, 'other', 'other.example.com', 'p256', 'sec1');
  writeFileSync(join(dir, 'chain.pem'), leaf.crt);
  const tls = kubewire('create', 'secret', 'tls', 'web-tls', '-n', 'shop', '--cert', join(dir, 'chain.pem'), '--key', join(dir, 'web.key'), '--dry-run=client', '-o', 'json');
  assert.equal(tls.code, 0, tls.stderr);
  const secret = JSON.parse(tls.stdout);
  assert.deepEqual([secret.kind, secret.type, secret.metadata], ['Secret', 'kubernetes.io/tls', { name: 'web-tls', namespace: 'shop' }]);
  assert.equal(Buffer.from(secret.data['tls.crt'], 'base64').toString(), leaf.crt, 'the whole chain, as given');
  assert.equal(Buffer.from(secret.data['tls.key'], 'base64').toString(), leaf.key);
  const generic = kubewire('create', 'secret', 'generic', 'creds', '--from-literal', 'user=admin', '--from-literal', 'pass=a=b', '--from-file', `ca.crt=${ca.caFile}`, '--dry-run=client', '-o', 'yaml');
  assert.equal(generic.code, 0, generic.stderr);
  assert.match(generic.stdout, /^type: Opaque$/m);
  assert.match(generic.stdout, new RegExp(`^  pass: ${Buffer.from('a=b').toString('base64')}$`, 'm'));
  assert.match(generic.stdout, /^  ca\.crt: /m);
  const refused: Array<[string[], RegExp]> = [
    [['tls', 'x', '--cert', join(dir, 'chain.pem'), '--key', join(dir, 'other.key')], /^error: failed to load key pair \(--cert .*chain\.pem, --key .*other\.key\): tls\.key does not belong to tls\.crt\n$/],
    [['tls', 'x', '--cert', join(dir, 'nothing.pem'), '--key', join(dir, 'web.key')], /^error: --cert .*nothing\.pem: no such file\n$/],
    [['tls', 'x', '--cert', join(dir, 'web.key'), '--key', join(dir, 'web.key')], /^error: failed to load key pair .*tls\.crt is not a PEM certificate/],
    [['generic', 'x', '--from-literal', 'novalue'], /^error: --from-literal novalue: must be key=value\n$/],
    [['generic', 'x', '--from-literal', 'a=1', '--from-literal', 'a=2'], /^error: --from-literal a=2: cannot add key a, another key by that name already exists\n$/],
  ];
  for (const [args, message] of refused) {
    const r = kubewire('create', 'secret', ...args, '--dry-run=client');
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, message);
  }
});

test('get tables as kubectl prints them: --no-headers drops the header line and sizes columns by the rows', () => {
  const rt = resourceNamed('pods')!;
  const pod = (name: string): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [] }, status: { phase: 'Running' } });
  const items = [pod('a'), pod('web-7d9c-x2kqp')];
  const withHeader = printTable(rt, items, { wide: false, allNamespaces: false }).split('\n');
  assert.match(withHeader[0]!, /^NAME\s+READY\s+STATUS/);
  assert.equal(withHeader.length, 3);
  const bare = printTable(rt, items, { wide: false, allNamespaces: true, noHeaders: true }).split('\n');
  assert.equal(bare.length, 2);
  assert.match(bare[0]!, /^default\s+a\s+0\/0\s+Running/);
  assert.ok(!bare.some((l) => /NAME/.test(l)));
});
