// The plugin harness in-process: the spec's environment protocol and error codes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runPlugin, type PluginFuncs } from '../src/cni/skel/skel.ts';
import { FakeDataplane } from '../src/dataplane/fake/host.ts';

const calls: string[] = [];
const funcs: PluginFuncs = {
  async add(a) { calls.push(`ADD ${a.containerID}`); return { cniVersion: a.conf.cniVersion, ips: [{ address: '10.100.0.2/24', gateway: '10.100.0.1', interface: 0 }], interfaces: [{ name: 'eth0', sandbox: a.netns }] }; },
  async del() { calls.push('DEL'); },
};

async function invoke(env: Record<string, string>, stdin: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runPlugin('test', funcs, { env, stdin: Buffer.from(stdin), stdout: (t) => (out += t), stderr: (t) => (err += t) }, new FakeDataplane());
  return { code, out, err };
}

const full = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
const conf = (v: string) => JSON.stringify({ cniVersion: v, name: 'net', type: 'test' });

test('VERSION answers with the supported versions', async () => {
  const r = await invoke({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.out), { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
});

test('no CNI_COMMAND prints "about" on stderr and exits 0', async () => {
  const r = await invoke({}, '');
  assert.equal(r.code, 0);
  assert.equal(r.out, '');
  assert.match(r.err, /supported CNI versions/);
});

test('results are answered in the requested version', async () => {
  const old = JSON.parse((await invoke(full, conf('0.3.1'))).out);
  assert.equal(old.cniVersion, '0.3.1');
  assert.equal(old.ips[0].version, '4');
  const cur = JSON.parse((await invoke(full, conf('1.0.0'))).out);
  assert.equal(cur.cniVersion, '1.0.0');
  assert.equal(cur.ips[0].version, undefined);
});

test('errors are JSON on stdout with the spec codes, exit code 1', async () => {
  const cases: Array<[Record<string, string>, string, number, RegExp]> = [
    [{ ...full, CNI_COMMAND: 'FROB' }, conf('1.0.0'), 4, /CNI_COMMAND/],
    [{ CNI_COMMAND: 'ADD', CNI_PATH: '/x' }, conf('1.0.0'), 4, /CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME/],
    [{ ...full, CNI_CONTAINERID: 'bad id;rm' }, conf('1.0.0'), 4, /CNI_CONTAINERID/],
    [{ ...full, CNI_IFNAME: 'this-name-is-too-long' }, conf('1.0.0'), 4, /CNI_IFNAME/],
    [{ ...full, CNI_IFNAME: 'eth/0' }, conf('1.0.0'), 4, /CNI_IFNAME/],
    [full, '{"cniVersion":', 6, /not valid JSON/],
    [full, '[1]', 6, /not a JSON object/],
    [full, JSON.stringify({ name: 'n', type: 't' }), 7, /cniVersion/],
    [full, JSON.stringify({ cniVersion: '1.0.0', type: 't' }), 7, /"name"/],
    [full, JSON.stringify({ cniVersion: '1.0.0', name: 'bad name', type: 't' }), 7, /"name"/],
    [full, JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), 7, /"type"/],
    [full, JSON.stringify({ cniVersion: '9.9.9', name: 'n', type: 't' }), 1, /not supported/],
    [{ ...full, CNI_COMMAND: 'CHECK' }, conf('0.3.1'), 1, /CHECK/],
    [{ ...full, CNI_COMMAND: 'GC' }, conf('1.0.0'), 1, /GC/],
  ];
  for (const [env, stdin, code, re] of cases) {
    const r = await invoke(env, stdin);
    assert.equal(r.code, 1, stdin);
    const e = JSON.parse(r.out);
    assert.equal(e.code, code, `${JSON.stringify(env)} ${stdin}: ${e.msg}`);
    assert.match(e.msg, re);
  }
});

test('DEL needs no CNI_NETNS (the namespace may be gone) and prints nothing', async () => {
  const { CNI_NETNS: _n, ...env } = full;
  const r = await invoke({ ...env, CNI_COMMAND: 'DEL' }, conf('1.0.0'));
  assert.equal(r.code, 0);
  assert.equal(r.out, '');
  assert.ok(calls.includes('DEL'));
});
