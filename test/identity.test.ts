// A cluster's PKI (kubeadm's names and layout) and the HTTPS listener in front of the API
// server's handler: the admin's certificate gets through, to requests and upgrades alike; no
// certificate, or one from another CA, gets kube-apiserver's 401 Status. No root needed.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HttpsListener, UNAUTHORIZED } from '../src/apiserver/https.ts';
import { prepareApiAccess } from '../src/identity/access.ts';
import { readEndpoint } from '../src/identity/endpoint.ts';
import { ADMIN, createPki, PKI, pkiDir, readServingPki, serverNames, type ClusterPki } from '../src/identity/pki.ts';

const dir = mkdtempSync(join(tmpdir(), 'kubewire-identity-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test("the server's names: kubeadm's set, the kubernetes Service's ClusterIP from the service range", () => {
  assert.deepEqual(serverNames({ serviceCIDR: '10.96.0.0/12', clusterDomain: 'lab.local' }), {
    dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.lab.local'],
    ips: ['127.0.0.1', '::1', '10.96.0.1'],
  });
  assert.deepEqual(serverNames({}).ips, ['127.0.0.1', '::1']);
});

describe('PKI', () => {
  let pki: ClusterPki;
  before(async () => {
    pki = await createPki(serverNames({ serviceCIDR: '10.96.0.0/12' }));
  });
  test('the CA signs both; the server certificate names 127.0.0.1, ::1, localhost and the kubernetes Service', () => {
    const ca = new X509Certificate(pki.ca.cert);
    const server = new X509Certificate(pki.server.cert);
    assert.equal(ca.ca, true);
    assert.equal(server.ca, false);
    assert.ok(server.verify(ca.publicKey) && server.checkIssued(ca));
    for (const ip of ['127.0.0.1', '::1', '10.96.0.1']) assert.equal(server.checkIP(ip), ip);
    for (const host of ['localhost', 'kubernetes.default.svc.cluster.local']) assert.equal(server.checkHost(host), host);
    assert.equal(server.checkIP('127.0.0.2'), undefined);
    assert.equal(server.checkHost('example.com'), undefined);
    assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1']); // serverAuth
  });
  test("the admin: kubeadm ≥1.29's CN and O, a client certificate", () => {
    const admin = new X509Certificate(pki.admin.cert);
    assert.equal(admin.subject, `O=${ADMIN.organization}\nCN=${ADMIN.commonName}`);
    assert.ok(admin.verify(new X509Certificate(pki.ca.cert).publicKey));
    assert.deepEqual(admin.keyUsage, ['1.3.6.1.5.5.7.3.2']); // clientAuth
    assert.match(pki.admin.key, /^-----BEGIN EC PRIVATE KEY-----/);
  });
});

test("prepareApiAccess: kubeadm's files (keys 0600), a port, kept as they are the second time", async () => {
  const cluster = join(dir, 'c1');
  const first = await prepareApiAccess(cluster, { serviceCIDR: '10.96.0.0/12' }, {});
  for (const key of [PKI.caKey, PKI.serverKey, PKI.adminKey]) assert.equal(statSync(join(pkiDir(cluster), key)).mode & 0o777, 0o600, key);
  assert.equal(statSync(join(pkiDir(cluster), PKI.caCert)).mode & 0o777, 0o644);
  const ca = readFileSync(join(pkiDir(cluster), PKI.caCert), 'utf8');
  const again = await prepareApiAccess(cluster, { serviceCIDR: '10.96.0.0/12' }, {});
  assert.deepEqual(again, first);
  assert.equal(readFileSync(join(pkiDir(cluster), PKI.caCert), 'utf8'), ca, 'the same CA');
  assert.deepEqual(readEndpoint(cluster), first);
  // In a guest kernel: the serving part copied from the host's directory, never the CA's key.
  const guest = join(dir, 'guest');
  assert.deepEqual(await prepareApiAccess(guest, {}, { KUBEWIRE_GUEST: '1', KUBEWIRE_HOST_DIR: cluster }), first);
  assert.equal(readServingPki(guest).ca, ca);
  assert.throws(() => statSync(join(pkiDir(guest), PKI.caKey)));
});

describe('HTTPS listener', () => {
  let pki: ClusterPki;
  let other: ClusterPki;
  let listener: HttpsListener;
  const socket = join(dir, 'https.sock');
  // The API server's part: any handler behind accept(); here one that echoes the path, and upgrades.
  const api = createServer((req, res) => res.end(`api ${req.url}`));
  api.on('upgrade', (_req: IncomingMessage, s) => s.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nupgraded'));
  before(async () => {
    [pki, other] = await Promise.all([createPki(serverNames({})), createPki(serverNames({}))]);
    listener = await HttpsListener.listen({ accept: (s) => api.emit('connection', s) }, { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key }, { path: socket });
  });
  after(() => listener.close());

  const call = (client: { cert: string; key: string } | undefined, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string; upgraded?: string }>((resolve, reject) => {
      const req = httpsRequest({ socketPath: socket, path: '/version', servername: 'localhost', ca: pki.ca.cert, ...client, headers, agent: false });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('upgrade', (res, s, head) => {
        const done = (d: Buffer) => {
          s.destroy();
          resolve({ status: res.statusCode!, body: '', upgraded: d.toString() });
        };
        if (head.length) done(head);
        else s.once('data', done);
      });
      req.on('error', reject);
      req.end();
    });

  test("the admin's certificate: the API answers", async () => {
    assert.deepEqual(await call(pki.admin), { status: 200, body: 'api /version' });
  });
  test('an upgrade with it reaches the API server too', async () => {
    const r = await call(pki.admin, { connection: 'Upgrade', upgrade: 'test' });
    assert.equal(r.status, 101);
    assert.equal(r.upgraded, 'upgraded');
  });
  test('no certificate: 401 Unauthorized as a Status', async () => {
    const r = await call(undefined);
    assert.equal(r.status, 401);
    assert.deepEqual(JSON.parse(r.body), UNAUTHORIZED);
  });
  test("another CA's certificate: 401, for an upgrade as for a request", async () => {
    assert.equal((await call(other.admin)).status, 401);
    const r = await call(other.admin, { connection: 'Upgrade', upgrade: 'test' });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).reason, 'Unauthorized');
  });
  test('the server certificate is checked by clients against the CA', async () => {
    await assert.rejects(
      new Promise((resolve, reject) => httpsRequest({ socketPath: socket, path: '/', servername: 'localhost', ca: other.ca.cert, ...pki.admin }, resolve).on('error', reject).end()),
      (e: NodeJS.ErrnoException) => e.code === 'SELF_SIGNED_CERT_IN_CHAIN' || e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
  });
});
