// The plugins' iptables rules as data (no kernel): names, shapes, removal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSave, removalLines } from '../src/dataplane/iptables-text.ts';
import { knownRemovalLines, masqLines, masqOwners } from '../src/cni/plugins/ipmasq.ts';
import { chainName } from '../src/cni/plugins/netfilter-names.ts';
import { containerLines, dnatChainName, portmapOwners, sharedLines } from '../src/cni/plugins/portmap/rules.ts';

test('chain names are the reference plugins\' (golden values read off their rules)', () => {
  // Observed from containernetworking-plugins' bridge (ipMasq) for network "diffnet", container "diff".
  assert.equal(chainName('diffnet', 'diff'), 'CNI-cafe7767cdae6ca551d2b66e');
  assert.equal(chainName('diffnet', 'diff').length, 28);
  assert.match(dnatChainName('kubewire', 'pod-b'), /^CNI-DN-[0-9a-f]{21}$/);
});

test('masquerade rules, and their owner read back from a dump', () => {
  const lines = masqLines('net', 'c1', ['10.100.0.5/24']);
  const chain = chainName('net', 'c1');
  assert.deepEqual(lines, [
    `:${chain} - [0:0]`,
    `-A ${chain} -d 10.100.0.0/24 -j ACCEPT -m comment --comment "name: \\"net\\" id: \\"c1\\""`,
    `-A ${chain} ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment "name: \\"net\\" id: \\"c1\\""`,
    `-A POSTROUTING -s 10.100.0.5 -j ${chain} -m comment --comment "name: \\"net\\" id: \\"c1\\""`,
  ]);
  assert.match(masqLines('net', 'c1', ['fd00::5/64'], 6).join('\n'), /! -d ff00::\/8 -j MASQUERADE/);
  // iptables-save prints the comment before the target.
  const dump = parseSave(`*nat\n:POSTROUTING ACCEPT [0:0]\n:${chain} - [0:0]\n-A POSTROUTING -s 10.100.0.5/32 -m comment --comment "name: \\"net\\" id: \\"c1\\"" -j ${chain}\nCOMMIT\n`);
  assert.deepEqual([...masqOwners(dump, 'net')], [[chain, 'c1']]);
  assert.deepEqual([...masqOwners(dump, 'other')], []);
});

test('removal deletes jumps first, then flushes and deletes the chains; nothing for absent chains', () => {
  const dump = parseSave(['*nat', ':POSTROUTING ACCEPT [0:0]', ':CNI-x - [0:0]', '-A POSTROUTING -s 10.0.0.1/32 -j CNI-x', '-A POSTROUTING -j OTHER', '-A CNI-x -j MASQUERADE', 'COMMIT'].join('\n'));
  assert.deepEqual(removalLines(dump, ['CNI-x']), ['-D POSTROUTING -s 10.0.0.1/32 -j CNI-x', '-F CNI-x', '-X CNI-x']);
  assert.deepEqual(removalLines(dump, ['CNI-absent']), []);
});

test('DEL with prevResult removes what ADD made without reading the table: the jumps as added, then the chain', () => {
  const chain = chainName('net', 'c1');
  const comment = '-m comment --comment "name: \\"net\\" id: \\"c1\\""';
  assert.deepEqual(knownRemovalLines('net', 'c1', ['10.100.0.5/24'], 4), [`-D POSTROUTING -s 10.100.0.5 -j ${chain} ${comment}`, `-F ${chain}`, `-X ${chain}`]);
  assert.deepEqual(knownRemovalLines('net', 'c1', ['fd00::5/64'], 6)[0], `-D POSTROUTING -s fd00::5 -j ${chain} ${comment}`);
});

test('portmap: shared chains only when missing; per-container chain with hairpin and localhost marks', () => {
  const empty = parseSave('*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n');
  const shared = sharedLines(empty, 13);
  assert.ok(shared.includes(':CNI-HOSTPORT-DNAT - [0:0]'));
  assert.ok(shared.includes('-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ'));
  assert.ok(shared.includes('-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000'));
  const present = parseSave(['*nat', ':CNI-HOSTPORT-DNAT - [0:0]', ':CNI-HOSTPORT-SETMARK - [0:0]', ':CNI-HOSTPORT-MASQ - [0:0]', '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ', 'COMMIT'].join('\n'));
  assert.deepEqual(sharedLines(present, 13), []);

  const ports = Array.from({ length: 17 }, (_, i) => ({ hostPort: 8000 + i, containerPort: 80, protocol: 'tcp' as const }));
  const lines = containerLines({ network: 'n', containerID: 'c', podAddress: '10.100.0.7/24', mappings: [...ports, { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '192.168.200.10' }], markMasqBit: 13, snat: true });
  const chain = dnatChainName('n', 'c');
  const entries = lines.filter((l) => l.startsWith('-A CNI-HOSTPORT-DNAT'));
  assert.equal(entries.length, 3, '17 TCP ports need two multiport rules (15 ports each at most), UDP one');
  assert.ok(lines.includes(`-A ${chain} -s 10.100.0.0/24 -p tcp -m tcp --dport 8000 -j CNI-HOSTPORT-SETMARK`));
  assert.ok(lines.includes(`-A ${chain} -s 127.0.0.1/32 -p tcp -m tcp --dport 8000 -j CNI-HOSTPORT-SETMARK`));
  assert.ok(lines.includes(`-A ${chain} -d 192.168.200.10/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.100.0.7:53`));
  const dump = parseSave(['*nat', `:${chain} - [0:0]`, entries[0]!, 'COMMIT'].join('\n'));
  assert.deepEqual([...portmapOwners(dump, 'n')], [[chain, 'c']]);
});
