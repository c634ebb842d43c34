// kube-proxy's configuration and health answers, as data: a KubeProxyConfiguration decoded
// strictly, the flags given winning over it, Go durations; /healthz and /livez bodies as
// kube-proxy prints them, 503 once a change has waited past the timeout; which iptables a
// standalone proxy writes through.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigFile, parseDuration, pickIptables, ProxyConfigError, resolveConfig } from '../src/proxy/config.ts';
import { goTime, ProxyMetrics } from '../src/proxy/metrics.ts';

const FILE = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: /etc/kube-proxy/kubeconfig, qps: 5}
hostnameOverride: node-a
mode: nftables
clusterCIDR: 10.244.0.0/16
healthzBindAddress: 0.0.0.0:10256
nftables: {minSyncPeriod: 250ms, syncPeriod: 1m0s}
conntrack: {maxPerCore: 0}
`;

test('a KubeProxyConfiguration: the fields kubewire acts on, the flags given win, unknown fields refused', () => {
  const file = parseConfigFile(FILE, 'kp.yaml');
  assert.deepEqual(file, { kubeconfig: '/etc/kube-proxy/kubeconfig', hostnameOverride: 'node-a', mode: 'nftables', clusterCIDR: '10.244.0.0/16', healthzBindAddress: '0.0.0.0:10256', minSyncMs: 250, healthTimeoutMs: 120_000 });
  const c = resolveConfig(file, { mode: 'iptables', metricsBindAddress: '0.0.0.0:10249' });
  assert.equal(c.mode, 'iptables', 'the flag wins');
  assert.equal(c.metricsBindAddress, '0.0.0.0:10249');
  assert.equal(c.clusterCIDR, '10.244.0.0/16', 'the file fills what no flag gave');
  assert.deepEqual(resolveConfig({}, {}), { mode: 'iptables', healthzBindAddress: '0.0.0.0:10256', metricsBindAddress: '127.0.0.1:10249', minSyncMs: 1000, healthTimeoutMs: 60_000 });
  const refused = (text: string, re: RegExp) => assert.throws(() => parseConfigFile(text, 'kp.yaml'), (e: unknown) => e instanceof ProxyConfigError && re.test(e.message));
  refused(`${FILE}bogus: 1\n`, /--config kp.yaml: bogus: unknown field \(strict decoding\)/);
  refused(FILE.replace('qps: 5', 'qpz: 5'), /clientConnection\.qpz: unknown field/);
  refused(FILE.replace('v1alpha1', 'v1'), /apiVersion: must be kubeproxy\.config\.k8s\.io\/v1alpha1/);
  refused(FILE.replace('250ms', 'soon'), /nftables\.minSyncPeriod: "soon" is not a duration/);
  assert.throws(() => resolveConfig({}, { clusterCIDR: '10.244/16' }), /--cluster-cidr "10.244\/16" is not a CIDR/);
  assert.throws(() => resolveConfig({}, { mode: 'userspace' as never }), /--proxy-mode "userspace": must be iptables, nftables or ipvs/);
  assert.deepEqual(['1s', '100ms', '1m30s', '0', '1.5h', 'x', '5'].map(parseDuration), [1000, 100, 90_000, 0, 5_400_000, undefined, undefined]);
});

test('/healthz and /livez as kube-proxy prints them; unhealthy once a change waits past the timeout, with the last sync time', () => {
  const m = new ProxyMetrics('n1');
  const now = Date.UTC(2026, 11, 6, 12, 0, 0, 250);
  assert.equal(goTime(now, 12.5), '2026-12-06 12:00:00.25 +0000 UTC m=+12.500000000');
  const ok = m.health('/healthz', undefined, 60_000, now);
  assert.equal(ok.healthy, true);
  assert.equal(goTime(now, -1), '2026-12-06 12:00:00.25 +0000 UTC', 'a time from before this process: no monotonic reading');
  assert.match(ok.body, /^\{"lastUpdated": "2026-12-06 12:00:00\.25 \+0000 UTC( m=\+[\d.]+)?","currentTime": "2026-12-06 12:00:00\.25 \+0000 UTC( m=\+[\d.]+)?", "nodeEligible": true\}$/);
  assert.doesNotMatch(m.health('/livez', undefined, 60_000, now).body, /nodeEligible/);
  m.syncedAt = now - 120_000;
  m.pendingSince = now - 61_000;
  const stale = m.health('/healthz', { apiServer: 'unreachable since then' }, 60_000, now);
  assert.equal(stale.healthy, false);
  assert.match(stale.body, /^\{"lastUpdated": "2026-12-06 11:58:00\.25 \+0000 UTC[^"]*","currentTime": "2026-12-06 12:00:00\.25 [^"]+", "nodeEligible": true, "apiServer": "unreachable since then"\}$/);
  assert.equal(m.health('/healthz', undefined, 60_000, now - 30_000).healthy, true, 'a change younger than the timeout is fine');
});

test('the iptables a standalone proxy writes through: the one holding the namespace\'s rules', () => {
  assert.deepEqual([pickIptables(0, 0), pickIptables(12, 0), pickIptables(0, 3), pickIptables(5, 9)], [undefined, 'legacy', 'nft', 'nft']);
});
