// host-local on disk: many parallel ADDs on one range, the reference layout, GC.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withLab } from '../src/lab/lab.ts';
import { callPlugin, mustCall, NOT_ROOT } from './helpers.ts';

describe('host-local IPAM', { skip: NOT_ROOT }, () => {
  test('60 parallel ADDs on one range yield 60 distinct IPs; DEL and GC release them', async () => {
    await withLab('kwt-hl', async (lab) => {
      const dataDir = lab.dir('ipam');
      const conf = { cniVersion: '1.1.0', name: 'par', type: 'host-local', ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.6.0/24' }]], dataDir } };
      const ids = Array.from({ length: 60 }, (_, i) => `ctr${i}`);
      const results = await Promise.all(ids.map((id) => mustCall({ command: 'ADD', conf, containerID: id, netns: '/proc/self/ns/net', ifName: 'eth0' })));
      const ips = results.map((r) => r.ips[0].address);
      assert.equal(new Set(ips).size, 60, 'duplicate IPs handed out');
      const dir = join(dataDir, 'par');
      const files = readdirSync(dir).filter((f) => /^\d/.test(f));
      assert.equal(files.length, 60);
      for (const [i, id] of ids.entries()) assert.equal(readFileSync(join(dir, ips[i]!.split('/')[0]!), 'utf8'), `${id}\r\neth0`);
      assert.ok(readdirSync(dir).includes('lock'));
      assert.match(readFileSync(join(dir, 'last_reserved_ip.0'), 'utf8'), /^10\.100\.6\.\d+$/);

      // A second ADD for the same attachment is refused (duplicate allocation).
      const dup = await callPlugin({ command: 'ADD', conf, containerID: 'ctr0', netns: '/proc/self/ns/net', ifName: 'eth0' });
      assert.equal(dup.ok, false);

      await Promise.all(ids.slice(0, 30).map((id) => mustCall({ command: 'DEL', conf, containerID: id, ifName: 'eth0' })));
      assert.equal(readdirSync(dir).filter((f) => /^\d/.test(f)).length, 30);
      await mustCall({ command: 'CHECK', conf, containerID: 'ctr40', netns: '/proc/self/ns/net', ifName: 'eth0' });
      const gone = await callPlugin({ command: 'CHECK', conf, containerID: 'ctr1', netns: '/proc/self/ns/net', ifName: 'eth0' });
      assert.equal(gone.ok, false);

      await mustCall({ command: 'GC', conf: { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'ctr59', ifname: 'eth0' }] } });
      assert.deepEqual(readdirSync(dir).filter((f) => /^\d/.test(f)), [ips[59]!.split('/')[0]]);
    });
  });

  test('round-robin: a released IP is not reused before the range wraps; requested IPs are honoured', async () => {
    await withLab('kwt-hlrr', async (lab) => {
      const dataDir = lab.dir('ipam');
      const conf = { cniVersion: '1.0.0', name: 'rr', type: 'host-local', ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.7.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir } };
      const add = (id: string, extra: object = {}) => mustCall({ command: 'ADD', conf: { ...conf, ...extra }, containerID: id, netns: '/proc/self/ns/net', ifName: 'eth0' });
      assert.equal((await add('a')).ips[0].address, '10.100.7.2/24');
      await mustCall({ command: 'DEL', conf, containerID: 'a', ifName: 'eth0' });
      const b = await add('b');
      assert.equal(b.ips[0].address, '10.100.7.3/24');
      assert.deepEqual(b.routes, [{ dst: '0.0.0.0/0' }]);
      assert.equal((await add('c', { runtimeConfig: { ips: ['10.100.7.50/24'] } })).ips[0].address, '10.100.7.50/24');
      const taken = await callPlugin({ command: 'ADD', conf: { ...conf, args: { cni: { ips: ['10.100.7.50'] } } }, containerID: 'd', netns: '/proc/self/ns/net', ifName: 'eth0' });
      assert.equal(taken.ok, false);
      assert.match(!taken.ok ? taken.error.message : '', /10\.100\.7\.50 is not available/);
      const outside = await callPlugin({ command: 'ADD', conf, containerID: 'e', netns: '/proc/self/ns/net', ifName: 'eth0', env: { CNI_ARGS: 'IP=10.1.1.1' } });
      assert.equal(!outside.ok && outside.error.code, 7);
    });
  });

  test('dual-stack: one IP per range set, IPv4 and IPv6', async () => {
    await withLab('kwt-hl6', async (lab) => {
      const dataDir = lab.dir('ipam');
      const conf = { cniVersion: '0.4.0', name: 'ds', type: 'host-local', ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.8.0/24' }], [{ subnet: 'fd00:100:8::/64' }]], dataDir } };
      const r = await mustCall({ command: 'ADD', conf, containerID: 'x', netns: '/proc/self/ns/net', ifName: 'eth0' });
      assert.deepEqual(r.ips.map((i: any) => [i.version, i.address, i.gateway]), [['4', '10.100.8.2/24', '10.100.8.1'], ['6', 'fd00:100:8::2/64', 'fd00:100:8::1']]);
      assert.ok(readdirSync(join(dataDir, 'ds')).includes('fd00:100:8::2'));
    });
  });
});
