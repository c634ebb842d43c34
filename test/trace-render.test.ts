// A trace's hops, structured and in words, without root: the words each hop kind has always
// printed come from the structured fields (one renderer for the CLI, -o json and the page),
// and the conntrack hop carries its entry's state and tuples beside its text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConntrackList } from '../src/dataplane/observations.ts';
import { conntrackHop } from '../src/trace/explain.ts';
import type { Probe, Snapshot } from '../src/trace/observe.ts';
import { hopWhat, renderTrace, traceJson, translationText } from '../src/trace/render.ts';
import type { Trace } from '../src/trace/types.ts';

test('address changes in the words the trace has always used', () => {
  assert.equal(translationText([{ kind: 'destination', to: '10.244.1.3:8080' }]), 'destination → 10.244.1.3:8080');
  assert.equal(translationText([{ kind: 'DNAT', from: '10.96.0.10:80', to: '10.244.1.3:8080' }, { kind: 'SNAT', from: '172.18.0.200:61007', to: '10.244.0.1:61007' }]), 'DNAT 10.96.0.10:80 → 10.244.1.3:8080, SNAT 172.18.0.200:61007 → 10.244.0.1:61007');
  assert.equal(translationText([{ kind: 'source', from: '10.244.0.3:40000', to: '172.18.0.11:40000' }]), 'source 10.244.0.3:40000 → 172.18.0.11:40000');
  assert.equal(translationText([{ kind: 'connection', to: '10.244.1.3:8080', sourcePort: 40010 }]), 'a new connection to 10.244.1.3:8080 from port 40010');
});

test('a conntrack hop: its words, and the same entry structured (state, flags, tuples, NAT)', () => {
  const snap: Snapshot = { links: [], neighbours: [], fdb: new Map(), ipvs: [], iptables: new Map(), nftChains: new Map(), conntrack: parseConntrackList('tcp      6 119 TIME_WAIT src=172.18.0.200 dst=172.18.0.11 sport=61007 dport=31388 src=10.244.0.3 dst=10.244.0.1 sport=8080 dport=61007 [ASSURED] mark=1802990706 use=1') };
  const probe = { from: { kind: 'external', name: 'external', netns: '/x' }, protocol: 'tcp', dst: '172.18.0.11', dport: 31388, sport: 61007 } as Probe;
  const hop = conntrackHop('node/n1', snap, probe)!;
  assert.equal(hop.translation, 'DNAT 172.18.0.11:31388 → 10.244.0.3:8080, SNAT 172.18.0.200:61007 → 10.244.0.1:61007');
  assert.deepEqual(hop.nat, [
    { kind: 'DNAT', from: '172.18.0.11:31388', to: '10.244.0.3:8080' },
    { kind: 'SNAT', from: '172.18.0.200:61007', to: '10.244.0.1:61007' },
  ]);
  assert.deepEqual(hop.conntrack, { protocol: 'tcp', state: 'TIME_WAIT', flags: ['ASSURED'], original: { src: '172.18.0.200', dst: '172.18.0.11', sport: 61007, dport: 31388 }, reply: { src: '10.244.0.3', dst: '10.244.0.1', sport: 8080, dport: 61007 } });
  assert.equal(hopWhat(hop), 'tcp entry 172.18.0.200:61007 → 172.18.0.11:31388, reply expected from 10.244.0.3:8080; now TIME_WAIT [ASSURED]; NAT: DNAT 172.18.0.11:31388 → 10.244.0.3:8080, SNAT 172.18.0.200:61007 → 10.244.0.1:61007');
});

test('a trace as text and as JSON, from one renderer: structured fields stay out of the text, and are all in the JSON', () => {
  const t: Trace = {
    probe: { from: 'pod/default/client', protocol: 'tcp', dst: '10.96.0.10', dport: 80, sport: 40000 },
    fate: 'refused',
    verdict: 'rejected',
    reason: 'rejected on node/n1 by output filter KUBE-SERVICES: -A KUBE-SERVICES ... -j REJECT (Service default/empty has no endpoints)',
    hops: [
      { netns: 'pod/default/client', kind: 'l3', out: 'eth0', detail: 'route 0.0.0.0/0 via 10.244.0.1 dev eth0: next hop 10.244.0.1' },
      {
        netns: 'node/n1',
        kind: 'netfilter',
        detail: 'forward filter KUBE-SERVICES',
        rule: '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/empty has no endpoints" -j REJECT',
        verdict: 'REJECT',
        netfilter: { source: 'iptables', table: 'filter', chain: 'KUBE-SERVICES', hook: 'forward', number: 1, comment: 'default/empty has no endpoints' },
        cause: 'rejected on node/n1 ...',
      },
    ],
  };
  const text = renderTrace(t);
  assert.equal(
    text,
    [
      'trace pod/default/client → 10.96.0.10:80 (tcp, probe source port 40000); the sender saw: refused',
      '',
      'request:',
      '#  WHERE               KIND       IN  OUT   WHAT',
      '1  pod/default/client  l3             eth0  route 0.0.0.0/0 via 10.244.0.1 dev eth0: next hop 10.244.0.1',
      '2  node/n1             netfilter            forward filter KUBE-SERVICES; rule: -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/empty has no endpoints" -j REJECT; verdict: REJECT',
      `request verdict: REJECTED: ${t.reason}`,
      '',
      `VERDICT: rejected: ${t.reason}`,
    ].join('\n'),
  );
  assert.ok(!text.includes('cause'), 'the cause is the verdict line, not repeated on the hop');
  assert.deepEqual(JSON.parse(traceJson(t)), t, 'the JSON carries every field');
});
