// A pod's view of names as the kubelet writes it (pure): resolv.conf per dnsPolicy with
// dnsConfig merged, the managed hosts file, the hostname; and the API's checks of those fields.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Pod } from '../src/api/types.ts';
import { validate } from '../src/api/validation.ts';
import { parseResolvConf, podHostname, podHosts, podResolvConf, renderResolvConf } from '../src/node/pod-view.ts';

const pod = (spec: Partial<Pod['spec']> = {}, name = 'web-1'): Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop' }, spec: { containers: [{ name: 'c', image: 'x' }], ...spec } });
const node = parseResolvConf('# the host\nsearch corp.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions edns0\n');
const o = { zone: 'cluster.local', dnsIP: '10.96.0.10', node };

test('ClusterFirst (the default): the cluster DNS, the namespace search path before the node\'s, ndots:5', () => {
  assert.equal(renderResolvConf(podResolvConf(pod(), o)), 'search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n');
});

test('Default: the node\'s resolver; None: only dnsConfig; dnsConfig merged (options overridden by name, at most 3 nameservers)', () => {
  assert.deepEqual(podResolvConf(pod({ dnsPolicy: 'Default' }), o), node);
  const none = podResolvConf(pod({ dnsPolicy: 'None', dnsConfig: { nameservers: ['1.1.1.1'], searches: ['a.example'], options: [{ name: 'ndots', value: '2' }] } }), o);
  assert.equal(renderResolvConf(none), 'search a.example\nnameserver 1.1.1.1\noptions ndots:2\n');
  const merged = podResolvConf(pod({ dnsConfig: { nameservers: ['1.1.1.1', '8.8.8.8', '9.9.9.9'], options: [{ name: 'ndots', value: '1' }, { name: 'timeout', value: '2' }] } }), o);
  assert.deepEqual(merged.nameservers, ['10.96.0.10', '1.1.1.1', '8.8.8.8']);
  assert.deepEqual(merged.options, [{ name: 'ndots', value: '1' }, { name: 'timeout', value: '2' }]);
});

test('hosts and hostname: the pod\'s IP and name; hostname + subdomain give its FQDN; hostAliases appended', () => {
  assert.equal(podHostname(pod()), 'web-1');
  assert.equal(podHostname(pod({ hostname: 'db-0', subdomain: 'db' })), 'db-0');
  const hosts = podHosts(pod({ hostname: 'db-0', subdomain: 'db', hostAliases: [{ ip: '192.0.2.9', hostnames: ['legacy', 'legacy.corp'] }] }), { zone: 'cluster.local', ip: '10.244.1.5' });
  assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
  assert.match(hosts, /^10\.244\.1\.5\tdb-0\.db\.shop\.svc\.cluster\.local\tdb-0$/m);
  assert.match(hosts, /# Entries added by HostAliases\.\n192\.0\.2\.9\tlegacy\tlegacy\.corp\n$/);
});

test('the API refuses bad DNS fields, naming each', () => {
  const problems = (spec: Partial<Pod['spec']>) => validate(pod(spec)).map((p) => `${p.field}: ${p.detail}`).join('\n');
  assert.equal(problems({ hostname: 'db-0', subdomain: 'db', dnsPolicy: 'ClusterFirst', dnsConfig: { nameservers: ['1.1.1.1'] } }), '');
  assert.match(problems({ hostname: 'DB_0' }), /spec\.hostname: Invalid value: "DB_0"/);
  assert.match(problems({ dnsPolicy: 'Google' as never }), /spec\.dnsPolicy: Unsupported value: "Google"/);
  assert.match(problems({ dnsPolicy: 'None' }), /spec\.dnsConfig\.nameservers: Required value/);
  assert.match(problems({ dnsConfig: { nameservers: ['1.1.1.1', '2.2.2.2', '3.3.3.3', '4.4.4.4'] } }), /must not have more than 3 nameservers/);
  assert.match(problems({ dnsConfig: { nameservers: ['dns.google'] } }), /spec\.dnsConfig\.nameservers\[0\]: Invalid value: "dns\.google": must be a valid IP address/);
  assert.match(problems({ hostAliases: [{ ip: 'x', hostnames: ['a'] }] }), /spec\.hostAliases\[0\]\.ip/);
});
