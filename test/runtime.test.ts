// The runtime library with a bridge + portmap conflist, as a container runtime drives it:
// chained ADD, libcni's cache, hostPort traffic from outside the node, DEL in reverse, GC.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadDefaultConfList, parseConfList } from '../src/cni/runtime/conflist.ts';
import { CniRuntime, pluginConfig } from '../src/cni/runtime/runtime.ts';
import { CniError } from '../src/cni/spec/errors.ts';
import { withLab } from '../src/lab/lab.ts';
import { NOT_ROOT, pluginDir, sh } from './helpers.ts';
import { linux } from '../src/dataplane/linux/host.ts';

test('version negotiation picks the highest supported of cniVersion and cniVersions', () => {
  const list = parseConfList(Buffer.from(JSON.stringify({ cniVersion: '0.4.0', cniVersions: ['1.0.0', '1.1.0', '9.0.0'], name: 'n', plugins: [{ type: 'bridge' }] })), 'x');
  assert.equal(list.cniVersion, '1.1.0');
  assert.throws(() => parseConfList(Buffer.from(JSON.stringify({ cniVersion: '0.1.0', name: 'n', plugins: [{ type: 'x' }] })), 'f.conflist'), (e: unknown) => e instanceof CniError && e.code === 1 && /f\.conflist/.test(e.message));
  assert.throws(() => parseConfList(Buffer.from('{"name":"n","plugins":[]}'), 'f.conflist'), /f\.conflist: "cniVersion" is required|non-empty/);
});

test('runtimeConfig carries only the capabilities a plugin declares', () => {
  const list = parseConfList(Buffer.from(JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true, bandwidth: false } }] })), 'x');
  const caps = { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }], bandwidth: { ingressRate: 1 } };
  assert.equal(pluginConfig(list, list.plugins[0]!, caps, undefined).runtimeConfig, undefined);
  const pm = pluginConfig(list, list.plugins[1]!, caps, { cniVersion: '1.0.0', ips: [{ address: '10.100.0.2/24' }] });
  assert.deepEqual(pm.runtimeConfig, { portMappings: caps.portMappings });
  assert.equal(pm.capabilities, undefined);
  assert.equal(pm.name, 'n');
  assert.deepEqual((pm.prevResult as any).ips, [{ address: '10.100.0.2/24' }]);
});

describe('runtime with bridge + portmap on the real kernel', { skip: NOT_ROOT }, () => {
  for (const inProcess of [false, true]) test(`ADD chain, cache, hostPort from outside and hairpin, CHECK, DEL in reverse, GC (${inProcess ? 'plugins in-process' : 'plugins executed'})`, async () => {
    await withLab(inProcess ? 'kwt-rtin' : 'kwt-rt', async (lab) => {
      const node = await lab.netns('node');
      const external = await lab.netns('ext');
      await lab.link({ netns: node, ifName: 'eth0', address: '192.168.200.10/24' }, { netns: external, ifName: 'eth0', address: '192.168.200.99/24' });
      const confDir = lab.dir('netd');
      const conflist = {
        cniVersion: '1.1.0',
        name: 'kwnet',
        plugins: [
          { type: 'bridge', bridge: 'kwbr5', isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.100.9.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: lab.dir('ipam') } },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      };
      writeFileSync(join(confDir, '20-second.conflist'), JSON.stringify({ ...conflist, name: 'not-first' }));
      writeFileSync(join(confDir, '10-kwnet.conflist'), JSON.stringify(conflist));
      const list = loadDefaultConfList(confDir);
      assert.equal(list.name, 'kwnet', 'the lexicographically first file is the network');
      const cacheDir = lab.dir('cache');
      const rt = new CniRuntime({ dataplane: linux, path: [pluginDir()], cacheDir, hostNetns: node, inProcess });

      const pods: Record<string, string> = {};
      for (const name of ['web', 'client']) pods[name] = await lab.netns(name);
      const ports = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
      const web = await rt.addNetworkList(list, { containerID: 'web', netns: pods.web!, ifName: 'eth0', capabilityArgs: { portMappings: ports }, args: [['K8S_POD_NAME', 'web']] });
      const client = await rt.addNetworkList(list, { containerID: 'client', netns: pods.client!, ifName: 'eth0' });
      const webIP = web.ips![0]!.address.split('/')[0]!;
      const clientIP = client.ips![0]!.address.split('/')[0]!;

      const cachePath = join(cacheDir, 'results', 'kwnet-web-eth0');
      const cached = JSON.parse(readFileSync(cachePath, 'utf8'));
      assert.equal(cached.kind, 'cniCacheV1');
      assert.equal(cached.containerId, 'web');
      assert.equal(cached.networkName, 'kwnet');
      assert.equal(JSON.parse(Buffer.from(cached.config, 'base64').toString()).name, 'kwnet');
      assert.deepEqual(cached.capabilityArgs, { portMappings: ports });
      assert.deepEqual(cached.cniArgs, [['K8S_POD_NAME', 'web']]);
      assert.equal(cached.result.ips[0].address, web.ips![0]!.address);

      await lab.echoServer(pods.web!, 80, 'web');
      // Pod to pod over the bridge: the server sees the client's own pod IP (no NAT).
      assert.equal((await lab.httpGet(pods.client!, `http://${webIP}/`)).trim(), `hello from web, you are ${clientIP}`);
      // hostPort from outside the node: DNAT to the pod, client address preserved.
      assert.equal((await lab.httpGet(external, 'http://192.168.200.10:8080/')).trim(), 'hello from web, you are 192.168.200.99');
      // Hairpin: the pod reaches itself through the node's hostPort (masqueraded, via the bridge).
      assert.match(await lab.httpGet(pods.web!, 'http://192.168.200.10:8080/'), /hello from web, you are 10\.100\.9\.1\n/);
      // From the node itself (OUTPUT chain).
      assert.match(await lab.httpGet(node, 'http://192.168.200.10:8080/'), /hello from web/);

      await rt.checkNetworkList(list, { containerID: 'web', netns: pods.web!, ifName: 'eth0', capabilityArgs: { portMappings: ports } });
      await sh(node, ['iptables', '-t', 'nat', '-F', (await sh(node, ['iptables', '-t', 'nat', '-S'])).match(/-N (CNI-DN-\S+)/)![1]!]);
      await assert.rejects(rt.checkNetworkList(list, { containerID: 'web', netns: pods.web!, ifName: 'eth0', capabilityArgs: { portMappings: ports } }), /portmap rule for hostPort 8080/);

      await rt.delNetworkList(list, { containerID: 'web', netns: pods.web!, ifName: 'eth0', capabilityArgs: { portMappings: ports } });
      assert.ok(!existsSync(cachePath));
      const nat = await sh(node, ['iptables-save', '-t', 'nat']);
      assert.doesNotMatch(nat, /CNI-DN-/);
      assert.doesNotMatch(nat, /id: \\"web\\"/);
      await assert.rejects(lab.httpGet(external, 'http://192.168.200.10:8080/'));

      // GC: "client" is no longer valid; its cached attachment is DELeted, its IP released.
      await rt.gcNetworkList(list, []);
      assert.ok(!existsSync(join(cacheDir, 'results', 'kwnet-client-eth0')));
      assert.equal((JSON.parse(await sh(pods.client!, ['ip', '-j', 'link'])) as any[]).find((l) => l.ifname === 'eth0'), undefined);
      await rt.getStatusNetworkList(list);
      assert.deepEqual((await rt.getVersionInfo('portmap')).supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
    });
  });
});
