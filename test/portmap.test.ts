// portmap on its own: chaining rules, bad mappings, CHECK, GC of a lost attachment, UDP.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withLab } from '../src/lab/lab.ts';
import { callPlugin, mustCall, NOT_ROOT, sh } from './helpers.ts';

const prevResult = (netns: string) => ({
  cniVersion: '1.0.0',
  interfaces: [{ name: 'kwbr11', mac: '02:00:00:00:00:01' }, { name: 'vethx', mac: '02:00:00:00:00:02' }, { name: 'eth0', mac: '02:00:00:00:00:03', sandbox: netns }],
  ips: [{ address: '10.100.16.5/24', gateway: '10.100.16.1', interface: 2 }],
});

describe('portmap plugin', { skip: NOT_ROOT }, () => {
  test('rules per mapping, CHECK, GC of attachments that are gone, errors for bad mappings', async () => {
    await withLab('kwt-pm', async (lab) => {
      const node = await lab.netns('node');
      await sh(node, ['ip', 'link', 'add', 'kwbr11', 'type', 'bridge']);
      const conf = (id: string, mappings: unknown, extra: object = {}) => ({
        cniVersion: '1.1.0', name: 'pmnet', type: 'portmap', prevResult: prevResult('/var/run/netns/x'),
        runtimeConfig: { portMappings: mappings }, ...extra,
      });
      const call = (command: 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS', id: string, c: object) => callPlugin({ command, conf: c, containerID: id, netns: '/var/run/netns/x', ifName: 'eth0', hostNetns: node });

      // No mappings: prevResult passes through unchanged, nothing is written.
      const none = await call('ADD', 'a0', conf('a0', []));
      assert.ok(none.ok);
      assert.deepEqual(none.ok && none.result.ips, prevResult('/var/run/netns/x').ips);
      assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-HOSTPORT/);

      const m1 = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 5353, containerPort: 53, protocol: 'UDP' }];
      assert.ok((await call('ADD', 'a1', conf('a1', m1))).ok);
      assert.ok((await call('ADD', 'a2', conf('a2', [{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }], { markMasqBit: 14 }))).ok);
      const nat = await sh(node, ['iptables-save', '-t', 'nat']);
      assert.match(nat, /-A CNI-DN-\S+ -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10\.100\.16\.5:80/);
      assert.match(nat, /-A CNI-DN-\S+ -p udp -m udp --dport 5353 -j DNAT --to-destination 10\.100\.16\.5:53/);
      assert.match(nat, /-A CNI-DN-\S+ -s 10\.100\.16\.0\/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK/);
      assert.equal(nat.match(/-j CNI-HOSTPORT-DNAT/g)?.length, 2, 'PREROUTING and OUTPUT jump once each, however many pods');
      // DNAT of 127.0.0.1 towards the pod needs route_localnet on the host interface facing it.
      assert.equal((await sh(node, ['sysctl', '-n', 'net.ipv4.conf.kwbr11.route_localnet'])).trim(), '1');
      assert.ok((await call('CHECK', 'a1', conf('a1', m1))).ok);
      assert.ok((await call('STATUS', '', conf('', []))).ok);

      // GC: only a2 is valid; a1's chain goes although no DEL ever came.
      assert.ok((await call('GC', '', { ...conf('', []), 'cni.dev/valid-attachments': [{ containerID: 'a2', ifname: 'eth0' }] })).ok);
      const after = await sh(node, ['iptables-save', '-t', 'nat']);
      assert.doesNotMatch(after, /--dport 8080 /);
      assert.match(after, /--dport 8081 /);
      const check = await call('CHECK', 'a1', conf('a1', m1));
      assert.equal(check.ok, false);

      for (const [mappings, re] of [
        [[{ hostPort: 0, containerPort: 80 }], /portMappings\[0\]\.hostPort/],
        [[{ hostPort: 80, containerPort: 80, protocol: 'icmp' }], /portMappings\[0\]\.protocol "icmp"/],
        [[{ hostPort: 80, containerPort: 80, hostIP: 'nope' }], /portMappings\[0\]\.hostIP/],
        ['x', /portMappings must be a list/],
      ] as const) {
        const out = await call('ADD', 'bad', conf('bad', mappings));
        assert.equal(out.ok, false);
        assert.equal(!out.ok && out.error.code, 7);
        assert.match(!out.ok ? out.error.message : '', re);
      }
      const unchained = await callPlugin({ command: 'ADD', conf: { cniVersion: '1.0.0', name: 'pmnet', type: 'portmap', runtimeConfig: { portMappings: m1 } }, containerID: 'u', netns: '/var/run/netns/x', ifName: 'eth0', hostNetns: node });
      assert.equal(!unchained.ok && unchained.error.code, 7);
      assert.match(!unchained.ok ? unchained.error.message : '', /prevResult/);
    });
  });
});
