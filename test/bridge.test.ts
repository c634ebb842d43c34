// bridge + host-local + loopback on the real kernel, in namespaces the tests create: a
// "node" namespace plays the host the plugin runs in, pods are namespaces beside it.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { withLab } from '../src/lab/lab.ts';
import { bridgeConf, callPlugin, mustCall, NOT_ROOT, sh } from './helpers.ts';

const opts = { skip: NOT_ROOT };

async function links(netns: string): Promise<any[]> {
  return JSON.parse(await sh(netns, ['ip', '-json', '-details', 'addr', 'show']));
}

describe('bridge plugin', opts, () => {
  for (const version of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
    test(`ADD ${version}: bridge with gateway, veth port, pod eth0 with address and routes, ip_forward`, async () => {
      await withLab(`kwt-br${version.replace(/\./g, '')}`, async (lab) => {
        const node = await lab.netns('node');
        const pod = await lab.netns('pod');
        const conf = bridgeConf({ bridge: 'kwbr0', subnet: '10.100.1.0/24', dataDir: lab.dir('ipam'), version, extra: { isDefaultGateway: true, ipMasq: true, hairpinMode: true, mtu: 1400 } });
        const result = await mustCall({ command: 'ADD', conf, containerID: 'ctr1', netns: pod, ifName: 'eth0', hostNetns: node });

        assert.equal(result.cniVersion, version);
        assert.equal(result.ips[0].address, '10.100.1.2/24');
        assert.equal(result.ips[0].gateway, '10.100.1.1');
        assert.equal(result.ips[0].interface, 2);
        assert.equal(result.ips[0].version, version.startsWith('0.') ? '4' : undefined);
        assert.deepEqual(result.interfaces.map((i: any) => i.name).slice(0, 1), ['kwbr0']);
        assert.equal(result.interfaces[2].name, 'eth0');
        assert.equal(result.interfaces[2].sandbox, pod);
        assert.deepEqual(result.routes, [{ dst: '0.0.0.0/0', gw: '10.100.1.1' }]);

        const hostLinks = await links(node);
        const br = hostLinks.find((l) => l.ifname === 'kwbr0');
        assert.equal(br.linkinfo.info_kind, 'bridge');
        assert.ok(br.flags.includes('UP'));
        assert.equal(br.mtu, 1400);
        assert.deepEqual(br.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), ['10.100.1.1/24']);
        assert.equal(br.address, result.interfaces[0].mac);
        const veth = hostLinks.find((l) => l.ifname === result.interfaces[1].name);
        assert.equal(veth.master, 'kwbr0');
        assert.equal(veth.linkinfo.info_slave_data.hairpin, true);
        assert.equal(veth.operstate, 'UP');

        const eth0 = (await links(pod)).find((l) => l.ifname === 'eth0');
        assert.equal(eth0.address, result.interfaces[2].mac);
        assert.equal(eth0.mtu, 1400);
        assert.equal(eth0.link_index, veth.ifindex);
        assert.deepEqual(eth0.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), ['10.100.1.2/24']);
        assert.match(await sh(pod, ['ip', 'route', 'show', 'default']), /default via 10\.100\.1\.1 dev eth0/);
        assert.equal((await sh(node, ['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '1');
        assert.match(await sh(node, ['iptables-save', '-t', 'nat']), /-A POSTROUTING -s 10\.100\.1\.2(\/32)? .*-j CNI-/);

        // The node reaches its pod directly over the bridge.
        await sh(node, ['ping', '-c1', '-W2', '10.100.1.2']);

        if (version !== '0.3.1') await mustCall({ command: 'CHECK', conf: { ...conf, prevResult: result }, containerID: 'ctr1', netns: pod, ifName: 'eth0', hostNetns: node });
        await mustCall({ command: 'DEL', conf: { ...conf, prevResult: result }, containerID: 'ctr1', netns: pod, ifName: 'eth0', hostNetns: node });
        assert.equal((await links(pod)).find((l) => l.ifname === 'eth0'), undefined);
        assert.equal((await links(node)).find((l) => l.ifname === result.interfaces[1].name), undefined);
        assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-[0-9a-f]/);
      });
    });
  }

  test('24 pods added in parallel on a new bridge: one bridge, distinct IPs, every pod reachable; parallel DEL leaves nothing', async () => {
    await withLab('kwt-brpar', async (lab) => {
      const node = await lab.netns('node');
      const dataDir = lab.dir('ipam');
      const conf = bridgeConf({ bridge: 'kwbr8', subnet: '10.100.13.0/24', dataDir, extra: { ipMasq: true, hairpinMode: true } });
      const pods = await Promise.all(Array.from({ length: 24 }, (_, i) => lab.netns(`p${i}`)));
      const results = await Promise.all(pods.map((pod, i) => mustCall({ command: 'ADD', conf, containerID: `par${i}`, netns: pod, ifName: 'eth0', hostNetns: node })));
      const ips = results.map((r) => r.ips[0].address.split('/')[0]);
      assert.equal(new Set(ips).size, pods.length);
      const hostLinks = await links(node);
      assert.equal(hostLinks.filter((l) => l.linkinfo?.info_kind === 'bridge').length, 1);
      assert.equal(hostLinks.filter((l) => l.master === 'kwbr8').length, pods.length);
      assert.equal(new Set(results.map((r) => r.interfaces[0].mac)).size, 1, 'the bridge MAC changed between ADDs');
      await sh(node, ['ping', '-c1', '-W2', ips[23]!]);
      await sh(pods[0]!, ['ping', '-c1', '-W2', ips[23]!]);
      await Promise.all(pods.map((pod, i) => mustCall({ command: 'DEL', conf, containerID: `par${i}`, netns: pod, ifName: 'eth0', hostNetns: node })));
      assert.equal((await links(node)).filter((l) => l.master === 'kwbr8').length, 0);
      assert.deepEqual(readdirSync(join(dataDir, 'kwtest')).filter((f) => /^\d/.test(f)), []);
      assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-[0-9a-f]/);
    });
  });

  test('dual-stack: IPv4 and IPv6 addresses, gateways on the bridge, default routes for both families', async () => {
    await withLab('kwt-brds', async (lab) => {
      const node = await lab.netns('node');
      const pod = await lab.netns('pod');
      const conf = bridgeConf({ bridge: 'kwbr12', subnet: '10.100.17.0/24', dataDir: lab.dir('ipam'), extra: { isDefaultGateway: true, ipMasq: true }, ipamExtra: { ranges: [[{ subnet: '10.100.17.0/24' }], [{ subnet: 'fd00:100:17::/64' }]] } });
      const result = await mustCall({ command: 'ADD', conf, containerID: 'ds', netns: pod, ifName: 'eth0', hostNetns: node });
      assert.deepEqual(result.ips.map((i: any) => i.address), ['10.100.17.2/24', 'fd00:100:17::2/64']);
      assert.deepEqual(result.routes, [{ dst: '0.0.0.0/0', gw: '10.100.17.1' }, { dst: '::/0', gw: 'fd00:100:17::1' }]);
      const br = (await links(node)).find((l) => l.ifname === 'kwbr12');
      assert.deepEqual(br.addr_info.filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`).sort(), ['10.100.17.1/24', 'fd00:100:17::1/64']);
      assert.match(await sh(pod, ['ip', '-6', 'route', 'show', 'default']), /default via fd00:100:17::1 dev eth0/);
      assert.equal((await sh(pod, ['sysctl', '-n', 'net.ipv6.conf.eth0.accept_dad'])).trim(), '0');
      assert.equal((await sh(node, ['sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).trim(), '1');
      // The bridge's own IPv6 address goes through DAD first (the pod's does not: accept_dad=0).
      await sh(node, ['ping', '-6', '-c1', '-w4', 'fd00:100:17::2']);
      await mustCall({ command: 'CHECK', conf: { ...conf, prevResult: result }, containerID: 'ds', netns: pod, ifName: 'eth0', hostNetns: node });
      assert.match(await sh(node, ['ip6tables-save', '-t', 'nat']), /-A CNI-\S+ ! -d ff00::\/8 .*-j MASQUERADE/);
      assert.match(await sh(node, ['iptables-save', '-t', 'nat']), /-A CNI-\S+ ! -d 224\.0\.0\.0\/4 .*-j MASQUERADE/);
      await mustCall({ command: 'DEL', conf, containerID: 'ds', netns: pod, ifName: 'eth0', hostNetns: node });
      assert.doesNotMatch(await sh(node, ['ip6tables-save', '-t', 'nat']), /CNI-/);
      assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-/);
    });
  });

  test('CHECK detects a removed address; DEL twice and with the namespace gone both succeed', async () => {
    await withLab('kwt-brchk', async (lab) => {
      const node = await lab.netns('node');
      const pod = await lab.netns('pod');
      const dataDir = lab.dir('ipam');
      const conf = bridgeConf({ bridge: 'kwbr1', subnet: '10.100.2.0/24', dataDir, extra: { ipMasq: true } });
      const base = { conf, containerID: 'ctr2', netns: pod, ifName: 'eth0', hostNetns: node } as const;
      const result = await mustCall({ ...base, command: 'ADD' });
      await mustCall({ ...base, command: 'CHECK', conf: { ...conf, prevResult: result } });
      await sh(pod, ['ip', 'addr', 'del', '10.100.2.2/24', 'dev', 'eth0']);
      const broken = await callPlugin({ ...base, command: 'CHECK', conf: { ...conf, prevResult: result } });
      assert.equal(broken.ok, false);
      assert.match(!broken.ok ? broken.error.message : '', /lacks address 10\.100\.2\.2\/24/);

      await mustCall({ ...base, command: 'DEL', conf: { ...conf, prevResult: result } });
      await mustCall({ ...base, command: 'DEL', conf: { ...conf, prevResult: result } });

      // A second pod whose namespace disappears before DEL (a crashed sandbox): DEL still releases all.
      const pod2 = await lab.netns('pod2');
      await mustCall({ ...base, command: 'ADD', containerID: 'ctr3', netns: pod2 });
      await sh(node, ['true']);
      await lab.exec(node, ['ip', 'netns', 'del', pod2.split('/').pop()!]);
      await mustCall({ ...base, command: 'DEL', containerID: 'ctr3', netns: pod2 });
      await mustCall({ ...base, command: 'DEL', containerID: 'ctr3', netns: '' });
      const files = readdirSync(join(dataDir, 'kwtest')).filter((f) => /^\d/.test(f));
      assert.deepEqual(files, []);
      assert.doesNotMatch(await sh(node, ['iptables-save', '-t', 'nat']), /CNI-[0-9a-f]/);
    });
  });

  test('a failure after IPAM rolls back: no IP, no veth, no rules left', async () => {
    await withLab('kwt-brfail', async (lab) => {
      const node = await lab.netns('node');
      const pod = await lab.netns('pod');
      const dataDir = lab.dir('ipam');
      const conf = bridgeConf({ bridge: 'kwbr2', subnet: '10.100.3.0/24', dataDir, extra: { ipMasq: true } });
      const out = await callPlugin({ command: 'ADD', conf, containerID: 'ctr4', netns: pod, ifName: 'eth0', hostNetns: node, env: { KUBEWIRE_CNI_FAULT: 'after-ipam' } });
      assert.equal(out.ok, false);
      assert.equal(readdirSync(join(dataDir, 'kwtest')).filter((f) => /^\d/.test(f)).length, 0);
      assert.equal((await links(pod)).find((l) => l.ifname === 'eth0'), undefined);
      assert.deepEqual((await links(node)).filter((l) => l.ifname.startsWith('veth')), []);
      // The same pod can then be added cleanly.
      await mustCall({ command: 'ADD', conf, containerID: 'ctr4', netns: pod, ifName: 'eth0', hostNetns: node });
    });
  });

  test('a plugin killed mid-ADD leaves nothing that GC does not clean', async () => {
    await withLab('kwt-brkill', async (lab) => {
      const node = await lab.netns('node');
      const pod = await lab.netns('pod');
      const keep = await lab.netns('keep');
      const dataDir = lab.dir('ipam');
      const conf = bridgeConf({ bridge: 'kwbr3', subnet: '10.100.4.0/24', dataDir, extra: { ipMasq: true } });
      await mustCall({ command: 'ADD', conf, containerID: 'alive', netns: keep, ifName: 'eth0', hostNetns: node });
      const out = await callPlugin({ command: 'ADD', conf, containerID: 'crashed', netns: pod, ifName: 'eth0', hostNetns: node, env: { KUBEWIRE_CNI_FAULT: 'kill-after-ipam' } });
      assert.equal(out.ok, false);
      assert.match(!out.ok ? out.error.message : '', /SIGKILL/);
      const ipFiles = () => readdirSync(join(dataDir, 'kwtest')).filter((f) => /^\d/.test(f)).sort();
      assert.deepEqual(ipFiles(), ['10.100.4.2', '10.100.4.3'], 'the killed ADD leaked its IP');
      assert.equal((await links(node)).filter((l) => l.ifname.startsWith('veth')).length, 2, 'the killed ADD leaked its veth');

      await mustCall({ command: 'GC', conf: { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'alive', ifname: 'eth0' }] }, hostNetns: node });
      assert.deepEqual(ipFiles(), ['10.100.4.2']);
      assert.equal((await links(node)).filter((l) => l.ifname.startsWith('veth')).length, 1);
      assert.equal((await links(pod)).find((l) => l.ifname === 'eth0'), undefined);
      const nat = await sh(node, ['iptables-save', '-t', 'nat']);
      assert.match(nat, /id: \\"alive\\"/);
      assert.doesNotMatch(nat, /id: \\"crashed\\"/);

      // GC with the older key name releases too.
      await mustCall({ command: 'GC', conf: { ...conf, 'cni.dev/attachments': [] }, hostNetns: node });
      assert.deepEqual(ipFiles(), []);
    });
  });

  test('bad input: unknown IPAM type, bad CNI_NETNS, existing interface, exhausted range, bad fields', async () => {
    await withLab('kwt-brbad', async (lab) => {
      const node = await lab.netns('node');
      const pod = await lab.netns('pod');
      const dataDir = lab.dir('ipam');
      const conf = bridgeConf({ bridge: 'kwbr4', subnet: '10.100.5.0/24', dataDir, ipamExtra: { ranges: [[{ subnet: '10.100.5.0/24', rangeStart: '10.100.5.10', rangeEnd: '10.100.5.10' }]] } });
      const base = { command: 'ADD', containerID: 'c', netns: pod, ifName: 'eth0', hostNetns: node } as const;
      const expectError = async (c: Parameters<typeof callPlugin>[0], code: number, re: RegExp): Promise<void> => {
        const out = await callPlugin(c);
        assert.equal(out.ok, false, `expected failure for ${JSON.stringify(c.conf).slice(0, 80)}`);
        if (!out.ok) {
          assert.equal(out.error.code, code, out.error.message);
          assert.match(out.error.message, re);
        }
      };
      await expectError({ ...base, conf: { ...conf, ipam: { type: 'no-such-ipam' } } }, 7, /failed to find plugin "no-such-ipam"/);
      await expectError({ ...base, conf, netns: '/var/run/netns/kwt-does-not-exist' }, 4, /CNI_NETNS .* does not exist/);
      await expectError({ ...base, conf, netns: '/etc/hostname' }, 4, /not a network namespace/);
      await expectError({ ...base, conf: { ...conf, mtu: 'big' } }, 7, /"mtu"/);
      await expectError({ ...base, conf: { ...conf, hairpinMode: true, promiscMode: true } }, 7, /hairpinMode and promiscMode/);
      await expectError({ ...base, conf: { ...conf, isGateway: 'yes' } }, 7, /"isGateway"/);
      await expectError({ ...base, conf: { ...conf, vlan: 100 } }, 2, /field "vlan" \(100\) is not supported/);
      await expectError({ ...base, conf: { ...conf, ipMasqBackend: 'nftables' } }, 2, /ipMasqBackend/);
      await expectError({ ...base, conf: '{"cniVersion": "1.0.0", "name": ' }, 6, /not valid JSON/);

      await mustCall({ ...base, conf });
      // The same interface name again in the same pod: error, and the first attachment is intact.
      await expectError({ ...base, conf, containerID: 'other' }, 999, /already exists/);
      assert.ok((await links(pod)).find((l) => l.ifname === 'eth0'));
      // The one-address range is now exhausted.
      const pod2 = await lab.netns('pod2');
      await expectError({ ...base, conf, containerID: 'c2', netns: pod2 }, 11, /no IP addresses available in range set 10\.100\.5\.0\/24/);
      assert.equal((await links(pod2)).find((l) => l.ifname === 'eth0'), undefined, 'the failed ADD left its veth');
      const files = readdirSync(join(dataDir, 'kwtest')).filter((f) => /^\d/.test(f));
      assert.deepEqual(files, ['10.100.5.10']);
      assert.equal(readFileSync(join(dataDir, 'kwtest', '10.100.5.10'), 'utf8'), 'c\r\neth0');

      // A bridge holding another address of the family refuses to become the gateway unless forceAddress.
      await sh(node, ['ip', 'link', 'add', 'kwbr13', 'type', 'bridge']);
      await sh(node, ['ip', 'addr', 'add', '10.100.18.254/24', 'dev', 'kwbr13']);
      const other = bridgeConf({ bridge: 'kwbr13', subnet: '10.100.18.0/24', dataDir });
      const pod3 = await lab.netns('pod3');
      await expectError({ ...base, conf: other, containerID: 'c3', netns: pod3 }, 999, /"kwbr13" already has an IP address different from 10\.100\.18\.1\/24/);
      assert.equal((await links(pod3)).find((l) => l.ifname === 'eth0'), undefined);
      await mustCall({ ...base, conf: { ...other, forceAddress: true }, containerID: 'c3', netns: pod3 });
      const kwbr13 = (await links(node)).find((l) => l.ifname === 'kwbr13');
      assert.deepEqual(kwbr13.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), ['10.100.18.1/24']);

      // STATUS reports that no further ADD can succeed.
      const status = await callPlugin({ command: 'STATUS', conf, hostNetns: node });
      assert.equal(status.ok, false);
      assert.equal(!status.ok && status.error.code, 50);
    });
  });

  test('loopback: lo up with its addresses; DEL tolerates a gone namespace', async () => {
    await withLab('kwt-lo', async (lab) => {
      const node = await lab.netns('node');
      const pod = await lab.netns('pod');
      await sh(pod, ['ip', 'link', 'set', 'lo', 'down']);
      const conf = { cniVersion: '1.0.0', name: 'cni-loopback', type: 'loopback' };
      const result = await mustCall({ command: 'ADD', conf, containerID: 'lo1', netns: pod, ifName: 'lo', hostNetns: node });
      assert.deepEqual(result.interfaces, [{ name: 'lo', mac: '00:00:00:00:00:00', sandbox: pod }]);
      assert.ok(result.ips.some((ip: any) => ip.address === '127.0.0.1/8'));
      assert.match(await sh(pod, ['ip', 'link', 'show', 'lo']), /UP/);
      await mustCall({ command: 'CHECK', conf: { ...conf, prevResult: result }, containerID: 'lo1', netns: pod, ifName: 'lo', hostNetns: node });
      await mustCall({ command: 'DEL', conf, containerID: 'lo1', netns: pod, ifName: 'lo', hostNetns: node });
      assert.doesNotMatch(await sh(pod, ['ip', 'link', 'show', 'lo']), /,UP/);
      await mustCall({ command: 'DEL', conf, containerID: 'lo1', netns: '/var/run/netns/kwt-gone', ifName: 'lo', hostNetns: node });
      assert.ok(!existsSync('/var/run/netns/kwt-gone'));
    });
  });
});
