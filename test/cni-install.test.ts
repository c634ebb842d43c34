// `kubewire cni install`, as flannel's install-cni does it: the plugins into a bin directory
// (replaced by rename, never half-written), the node's conflist into a conf directory on the
// podCIDRs of its Node object read through a kubeconfig; one-line errors. Temp dirs only.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { builtShimPath, CONFLIST_NAME, installConflist, installPlugins, nodeNetworkConflist, PLUGIN_NAMES } from '../src/cni/install.ts';
import { isKubewirePlugin } from '../src/cni/invoke/marker.ts';
import { parseConfList } from '../src/cni/runtime/conflist.ts';
import { createPki, serverNames } from '../src/identity/pki.ts';
import { kubeconfigFor, printKubeconfig } from '../src/identity/kubeconfig.ts';

const scratch = mkdtempSync(join(tmpdir(), 'kwt-install-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const CLI = new URL('../bin/kubewire.js', import.meta.url).pathname;

describe('plugins into the bin directory', () => {
  test('the shim as each plugin, the Node.js fallback, the bundle, the server link; replaced by rename', () => {
    const shim = builtShimPath();
    const dir = join(scratch, 'opt', 'cni', 'bin');
    installPlugins({ dir, socket: '/run/kwt-nowhere/cni.sock' });
    for (const name of PLUGIN_NAMES) {
      assert.ok(statSync(join(dir, name)).mode & 0o111, `${name} is not executable`);
      assert.ok(isKubewirePlugin(join(dir, name)), `${name} is not recognised as kubewire's`);
      if (shim) assert.deepEqual(readFileSync(join(dir, name)), readFileSync(shim), `${name} is not the shim`);
    }
    assert.match(readFileSync(join(dir, 'kubewire-cni-node'), 'utf8'), /^#!\/bin\/sh\n# kubewire-cni-plugin.*\nunset NODE_EXTRA_CA_CERTS\nexec '.*node' '.*\/kubewire-cni\.cjs' "\$@"\n$/);
    assert.equal(readlinkSync(join(dir, 'kubewire-cni.sock')), '/run/kwt-nowhere/cni.sock');
    // Again: every file is a new inode (a runtime executing the old one keeps it whole), no temp files left.
    const inodes = PLUGIN_NAMES.map((n) => statSync(join(dir, n)).ino);
    installPlugins({ dir, shim: false });
    assert.notDeepEqual(PLUGIN_NAMES.map((n) => statSync(join(dir, n)).ino), inodes);
    assert.match(readFileSync(join(dir, 'bridge'), 'utf8'), /^#!\/bin\/sh\n# kubewire-cni-plugin: bridge/);
    assert.ok(!existsSync(join(dir, 'kubewire-cni.sock')), 'wrappers need no server link');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('tmp')), []);
  });

  test('an unwritable directory or a missing shim: one line, nothing written', () => {
    const file = join(scratch, 'a-file');
    writeFileSync(file, '');
    assert.throws(() => installPlugins({ dir: join(file, 'bin') }), { name: 'InstallError', message: `cannot write into ${join(file, 'bin')}: a path component is not a directory` });
    assert.throws(() => installPlugins({ dir: join(scratch, 'b'), shim: '/nonexistent/kubewire-cni-shim' }), /the CNI shim \/nonexistent\/kubewire-cni-shim does not exist/);
  });
});

describe('the node\'s conflist', () => {
  test('bridge as flannel\'s (cni0, default gateway, hairpin), ptp as kindnet\'s, dual-stack, portmap when asked', () => {
    const bridge = nodeNetworkConflist({ podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'], plugin: 'bridge', portmap: true });
    assert.deepEqual(bridge, {
      cniVersion: '1.0.0',
      name: 'kubewire',
      plugins: [
        { type: 'bridge', bridge: 'cni0', isGateway: true, isDefaultGateway: true, hairpinMode: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:244:1::/64' }]] } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    });
    const ptp = nodeNetworkConflist({ podCIDRs: ['10.244.2.0/24'], plugin: 'ptp', portmap: false, mtu: 1450, ipMasq: true, dataDir: '/run/cni-ipam-state' });
    assert.deepEqual(ptp, {
      cniVersion: '1.0.0',
      name: 'kubewire',
      plugins: [{ type: 'ptp', ipMasq: true, mtu: 1450, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.2.0/24' }]], dataDir: '/run/cni-ipam-state', routes: [{ dst: '0.0.0.0/0' }] } }],
    });
    // What a runtime loads from the directory is a valid list.
    const dir = join(scratch, 'net.d');
    const written = installConflist(dir, bridge, true);
    assert.deepEqual(written.map((p) => p.slice(dir.length + 1)), [CONFLIST_NAME, '99-loopback.conf']);
    assert.equal(parseConfList(readFileSync(written[0]!), written[0]!).plugins.length, 2);
    assert.deepEqual(JSON.parse(readFileSync(written[1]!, 'utf8')), { cniVersion: '1.0.0', name: 'cni-loopback', type: 'loopback' });
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kubewire(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', HOME: scratch, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('kubewire cni install against an API server (client certificate)', () => {
  let kubeconfig = '';
  let wrongKubeconfig = '';
  let close = (): void => undefined;
  const seen: string[] = [];
  const NODES: Record<string, object> = {
    'node-a': { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' }, spec: { podCIDR: '10.244.3.0/24', podCIDRs: ['10.244.3.0/24', 'fd00:10:244:3::/64'] } },
    'node-b': { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b' }, spec: {} },
  };

  before(async () => {
    const pki = await createPki(serverNames({}));
    const other = await createPki(serverNames({}));
    // Only a client with a certificate of the cluster's CA gets an answer (as kube-apiserver).
    const server = createServer({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const name = /^\/api\/v1\/nodes\/([^/?]+)$/.exec(req.url ?? '')?.[1];
      const node = name ? NODES[decodeURIComponent(name)] : undefined;
      res.setHeader('content-type', 'application/json');
      if (node) return res.end(JSON.stringify(node));
      res.statusCode = 404;
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `nodes "${name}" not found`, reason: 'NotFound', code: 404 }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    close = () => server.close();
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    kubeconfig = join(scratch, 'kubeconfig');
    writeFileSync(kubeconfig, printKubeconfig(kubeconfigFor('kwt', { server: url, ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key })));
    wrongKubeconfig = join(scratch, 'wrong-kubeconfig');
    writeFileSync(wrongKubeconfig, printKubeconfig(kubeconfigFor('kwt', { server: url, ca: other.ca.cert, cert: other.admin.cert, key: other.admin.key })));
  });
  after(() => close());

  test('writes the plugins and the node\'s conflist on its podCIDRs (--node-name, or $NODE_NAME)', async () => {
    const bin = join(scratch, 'cli', 'bin');
    const conf = join(scratch, 'cli', 'net.d');
    const r = await kubewire(['cni', 'install', '--bin-dir', bin, '--conf-dir', conf, '--kubeconfig', kubeconfig, '--socket', '/run/kwt-x/cni.sock'], { NODE_NAME: 'node-a' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`wrote ${join(conf, CONFLIST_NAME)} \\(podCIDR 10\\.244\\.3\\.0/24,fd00:10:244:3::/64\\)`));
    assert.ok(seen.includes('GET /api/v1/nodes/node-a'));
    const list = JSON.parse(readFileSync(join(conf, CONFLIST_NAME), 'utf8'));
    assert.deepEqual(list, nodeNetworkConflist({ podCIDRs: ['10.244.3.0/24', 'fd00:10:244:3::/64'], plugin: 'bridge', portmap: true }));
    for (const name of PLUGIN_NAMES) assert.ok(isKubewirePlugin(join(bin, name)));
    assert.equal(readlinkSync(join(bin, 'kubewire-cni.sock')), '/run/kwt-x/cni.sock');
    const ptp = await kubewire(['cni', 'install', '--bin-dir', bin, '--conf-dir', conf, '--kubeconfig', kubeconfig, '--node-name', 'node-a', '--plugin', 'ptp', '--no-portmap', '--no-shim']);
    assert.equal(ptp.code, 0, ptp.stderr);
    assert.equal(JSON.parse(readFileSync(join(conf, CONFLIST_NAME), 'utf8')).plugins[0].type, 'ptp');
    assert.ok(!lstatSync(join(bin, 'bridge')).isSymbolicLink());
  });

  test('a missing node, a node without podCIDR, a wrong certificate, a missing kubeconfig, an unwritable dir: one line, nothing written', async () => {
    const conf = join(scratch, 'err', 'net.d');
    const bin = join(scratch, 'err', 'bin');
    const file = join(scratch, 'err-file');
    writeFileSync(file, '');
    const cases: Array<[string[], RegExp]> = [
      [['--kubeconfig', kubeconfig, '--node-name', 'node-z'], /^error: node "node-z" not found on https:\/\/127\.0\.0\.1:\d+: is --node-name \(or \$NODE_NAME\) this node's name as kubectl get nodes shows it\?\n$/],
      [['--kubeconfig', kubeconfig, '--node-name', 'node-b'], /^error: node "node-b" has no podCIDR \(spec\.podCIDR is empty\): the controller manager assigns one with --allocate-node-cidrs and --cluster-cidr\n$/],
      [['--kubeconfig', wrongKubeconfig, '--node-name', 'node-a'], /^error: cannot reach the API server at https:\/\/127\.0\.0\.1:\d+ \(kubeconfig .*wrong-kubeconfig\): .*(certificate|CERT).*\n$/],
      [['--kubeconfig', join(scratch, 'none'), '--node-name', 'node-a'], /^error: kubeconfig .*\/none: no such file\n$/],
      [['--kubeconfig', kubeconfig, '--node-name', 'node-a', '--conf-dir', join(file, 'net.d')], /^error: cannot write into .*err-file\/net\.d: a path component is not a directory\n$/],
      [['--plugin', 'macvlan'], /^error: --plugin "macvlan": must be bridge or ptp\n$/],
    ];
    const runs = await Promise.all(cases.map(([args]) => kubewire(['cni', 'install', '--bin-dir', bin, '--conf-dir', conf, ...args])));
    cases.forEach(([args, re], i) => {
      assert.equal(runs[i]!.code, 1, args.join(' '));
      assert.match(runs[i]!.stderr, re);
    });
    // The node and the directories are checked first: none of these left plugins or a conflist.
    assert.ok(!existsSync(conf));
    assert.ok(!existsSync(bin));
  });
});
