// TLS termination in the ingress, without a cluster: the server name read from real
// ClientHellos (Node's, openssl's, curl's; whole, cut short, split over records, mangled),
// every kind of certificate and key file users bring checked and tried in a handshake, and
// the certificate served over loopback (127.0.0.1 in the test's own process) chosen by SNI
// whatever the key types of the default and the chosen certificate, chains included.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as http2Connect, createServer as createHttp2Server } from 'node:http2';
import { connect as tlsConnect, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { readServerName } from '../src/ingress/clienthello.ts';
import { terminateTls, terminatingServer, type KeyPair } from '../src/ingress/terminate.ts';
import type { Ingress, Secret } from '../src/api/types.ts';
import { loadCertificate, loadTls, type Certificate } from '../src/ingress/tls.ts';
import { makeCa, makeLeaf, type KeyFormat, type KeyType, type LeafCertificate, type TestCa } from './certificates.ts';

/** The first TLS record a client sends to a listener on loopback (its ClientHello). */
async function captureClientHello(client: (port: number) => () => void): Promise<Buffer> {
  let stop: (() => void) | undefined;
  const server = createServer();
  const hello = new Promise<Buffer>((resolve, reject) => {
    server.on('connection', (socket) => {
      let head = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => {
        head = Buffer.concat([head, d]);
        if (head.length >= 5 && head.length >= 5 + head.readUInt16BE(3)) {
          resolve(head);
          socket.destroy();
        }
      });
      socket.on('error', () => undefined);
    });
    setTimeout(() => reject(new Error('no ClientHello within 5 s')), 5000).unref();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    stop = client((server.address() as AddressInfo).port);
    return await hello;
  } finally {
    stop?.();
    server.close();
  }
}

const nodeClient = (servername: string | undefined) => (port: number) => {
  const s = tlsConnect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] });
  s.on('error', () => undefined);
  return () => s.destroy();
};
const toolClient = (cmd: string, args: (port: number) => string[]) => (port: number) => {
  const p = spawn(cmd, args(port), { stdio: 'ignore' });
  p.on('error', () => undefined);
  return () => p.kill();
};

/** The handshake message of `hello` re-sent in records of at most `size` bytes. */
function refragment(hello: Buffer, size: number): Buffer {
  const message = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let at = 0; at < message.length; at += size) {
    const part = message.subarray(at, at + size);
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    records.push(header, part);
  }
  return Buffer.concat(records);
}

describe('the server name of a ClientHello', () => {
  const hellos = new Map<string, Buffer>();
  before(async () => {
    hellos.set('node', await captureClientHello(nodeClient('Web.Example.COM')));
    hellos.set('node without SNI', await captureClientHello(nodeClient(undefined)));
    hellos.set('openssl', await captureClientHello(toolClient('openssl', (p) => ['s_client', '-connect', `127.0.0.1:${p}`, '-servername', 'openssl.example.com'])));
    hellos.set('openssl without SNI', await captureClientHello(toolClient('openssl', (p) => ['s_client', '-connect', `127.0.0.1:${p}`, '-noservername'])));
    hellos.set('curl', await captureClientHello(toolClient('curl', (p) => ['-sk', '-m', '3', '--resolve', `curl.example.com:${p}:127.0.0.1`, `https://curl.example.com:${p}/`])));
  });

  test("read from real clients' ClientHellos, lowercased; none when they send none", () => {
    assert.deepEqual(readServerName(hellos.get('node')!), { serverName: 'web.example.com' });
    assert.deepEqual(readServerName(hellos.get('openssl')!), { serverName: 'openssl.example.com' });
    assert.deepEqual(readServerName(hellos.get('curl')!), { serverName: 'curl.example.com' });
    assert.deepEqual(readServerName(hellos.get('node without SNI')!), { serverName: undefined });
    assert.deepEqual(readServerName(hellos.get('openssl without SNI')!), { serverName: undefined });
  });

  test('a ClientHello cut short asks for more; one split over records (and TCP segments) is joined', () => {
    for (const [client, hello] of hellos) {
      for (let n = 0; n < hello.length; n++) assert.equal(readServerName(hello.subarray(0, n)), 'more', `${client}: the first ${n} of ${hello.length} bytes`);
      const expected = readServerName(hello);
      for (const size of [1, 7, 100, 512]) {
        const split = refragment(hello, size);
        assert.deepEqual(readServerName(split), expected, `${client} in records of ${size} bytes`);
        assert.equal(readServerName(split.subarray(0, split.length - 1)), 'more', `${client} in records of ${size} bytes, cut short`);
      }
    }
  });

  test('what is not a ClientHello names nothing; mangled ones never throw', () => {
    assert.deepEqual(readServerName(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')), { serverName: undefined });
    assert.deepEqual(readServerName(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])), { serverName: undefined }, 'a ServerHello');
    assert.deepEqual(readServerName(Buffer.from([22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff])), { serverName: undefined }, 'longer than OpenSSL takes');
    const hello = hellos.get('openssl')!;
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 5000; i++) {
      const mangled = Buffer.from(hello);
      for (let k = 0; k < 1 + Math.floor(random() * 4); k++) mangled[Math.floor(random() * mangled.length)] = Math.floor(random() * 256);
      const read = readServerName(mangled.subarray(0, Math.floor(random() * mangled.length) + 1));
      assert.ok(read === 'more' || read.serverName === undefined || /^[a-z0-9._-]+$/.test(read.serverName), JSON.stringify(read));
    }
  });
});

describe('certificates users bring', () => {
  let dir: string;
  let ca: TestCa;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kwt-tls-'));
    ca = makeCa(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const kinds: Array<[KeyType, KeyFormat, RegExp]> = [
    ['rsa2048', 'pkcs1', /^-----BEGIN RSA PRIVATE KEY-----/],
    ['rsa3072', 'pkcs8', /^-----BEGIN PRIVATE KEY-----/],
    ['rsa4096', 'pkcs1', /^-----BEGIN RSA PRIVATE KEY-----/],
    ['p256', 'sec1', /^-----BEGIN EC PRIVATE KEY-----/],
    ['p384', 'pkcs8', /^-----BEGIN PRIVATE KEY-----/],
    ['ed25519', 'pkcs8', /^-----BEGIN PRIVATE KEY-----/],
  ];
  for (const [type, format, header] of kinds) {
    test(`${type} with a ${format} key file and an intermediate: loaded, no problem`, async () => {
      const leaf = makeLeaf(ca, type, `${type}.example.com`, type, format);
      assert.match(leaf.key, header, 'the key file is in the format the test means');
      const cert = await loadCertificate(leaf.crt, leaf.key);
      assert.notEqual(typeof cert, 'string', String(cert));
      assert.deepEqual((cert as Certificate).names, [`${type}.example.com`]);
      assert.deepEqual((cert as Certificate).warnings, []);
    });
  }

  test('one check per certificate: Secrets with the same content share it, across syncs too', async () => {
    const leaf = makeLeaf(ca, 'shared', 'shared.example.com', 'p256');
    const secret = (namespace: string): Secret => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tls', namespace }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(leaf.crt).toString('base64'), 'tls.key': Buffer.from(leaf.key).toString('base64') } });
    const ingress = (namespace: string): Ingress => ({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'i', namespace, uid: namespace }, spec: { tls: [{ hosts: ['shared.example.com'], secretName: 'tls' }] } });
    const cache = new Map<string, Promise<Certificate | string>>();
    const first = await loadTls([ingress('a'), ingress('b')], [secret('a'), secret('b')], cache);
    assert.equal(cache.size, 1);
    assert.equal(first.certificates.get('a/tls')!.keyPair, first.certificates.get('b/tls')!.keyPair, 'one key pair, so one TLS server');
    const again = await loadTls([ingress('a')], [secret('a')], cache);
    assert.equal(again.certificates.get('a/tls'), first.certificates.get('a/tls'));
    await loadTls([], [], cache);
    assert.equal(cache.size, 0, 'what no Ingress names any more is forgotten');
  });

  test('a chain out of order, a key of another certificate, an encrypted key, a DSA certificate, a short RSA key: each said plainly', async () => {
    const leaf = makeLeaf(ca, 'order', 'order.example.com', 'p256');
    assert.match((await loadCertificate(leaf.intermediate + leaf.leaf, leaf.key)) as string, /tls\.key belongs to the second certificate of tls\.crt: the certificate of the key \(the leaf\) must come first/);
    const other = makeLeaf(ca, 'other', 'other.example.com', 'p256');
    assert.match((await loadCertificate(leaf.crt, other.key)) as string, /tls\.key does not belong to tls\.crt/);
    const doubled = (await loadCertificate(leaf.leaf + other.leaf, leaf.key)) as Certificate;
    assert.match(doubled.warnings.join(), /the second certificate of tls\.crt \(CN=other\.example\.com\) did not issue the first/);
    const encrypted = spawnSync('openssl', ['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-passout', 'pass:secret'], { input: leaf.key }).stdout.toString();
    assert.match((await loadCertificate(leaf.crt, encrypted)) as string, /tls\.key is encrypted: the controller needs it without a passphrase/);
    assert.match((await loadCertificate(leaf.crt, 'not a key')) as string, /tls\.key is not a PEM private key/);
    spawnSync('openssl', ['dsaparam', '-genkey', '-out', join(dir, 'dsa.key'), '2048']);
    const dsa = spawnSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'dsa.key'), '-subj', '/CN=dsa.example.com', '-days', '2']).stdout.toString();
    assert.match((await loadCertificate(dsa, readFileSync(join(dir, 'dsa.key'), 'utf8'))) as string, /the certificate cannot be used for a TLS handshake \(TLS 1\.3 clients: no suitable signature algorithm; TLS 1\.2 clients: no shared cipher\)/);
    const short = makeLeaf(ca, 'short', 'short.example.com', 'rsa1024');
    assert.match(((await loadCertificate(short.crt, short.key)) as Certificate).warnings.join(), /the RSA key has 1024 bits/);
  });
});

describe('the certificate served by SNI', () => {
  let dir: string;
  let ca: TestCa;
  const leaves = new Map<string, LeafCertificate>();
  const pairs = new Map<string, KeyPair>();
  let server: Server;
  let defaultPair: KeyPair;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kwt-sni-'));
    ca = makeCa(dir);
    for (const type of ['rsa2048', 'p256', 'ed25519'] as const) leaves.set(type, makeLeaf(ca, type, `${type}.example.com`, type));
    for (const [type, leaf] of leaves) pairs.set(`${type}.example.com`, ((await loadCertificate(leaf.crt, leaf.key)) as Certificate).keyPair);
    const servers = new Map<KeyPair, TlsServer>();
    const h2 = createHttp2Server((req, res) => res.end(`h2 ${req.headers[':authority']}`));
    const onSecure = (tls: TLSSocket) => (tls.alpnProtocol === 'h2' ? h2.emit('connection', tls) : tls.end(`${tls.alpnProtocol}\n`));
    const serverOf = (pair: KeyPair) => servers.get(pair) ?? servers.set(pair, terminatingServer(pair, ['h2', 'http/1.1'], onSecure)).get(pair)!;
    server = createServer((socket) => terminateTls(socket, (name) => serverOf((name && pairs.get(name)) || defaultPair)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Connects trusting the test's root CA alone: the intermediate must be sent, the hostname must match. */
  const handshake = (servername: string | undefined) =>
    new Promise<{ subject: string; authorized: boolean; alpn: string }>((resolve, reject) => {
      const s = tlsConnect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername, ca: readFileSync(ca.caFile), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
      s.once('secureConnect', () => {
        resolve({ subject: String(s.getPeerCertificate().subject.CN), authorized: s.authorized, alpn: String(s.alpnProtocol) });
        s.destroy();
      });
      s.once('error', reject);
    });

  for (const def of ['rsa2048', 'p256'] as const) {
    test(`a default certificate of ${def}: every Secret's certificate served by its name, verified with its chain`, async () => {
      const d = leaves.get(def)!;
      defaultPair = { cert: d.crt, key: d.key };
      for (const type of leaves.keys()) {
        const got = await handshake(`${type}.example.com`);
        assert.equal(got.subject, `${type}.example.com`, `SNI ${type}.example.com with a ${def} default`);
        assert.ok(got.authorized, `${type}: verified against the root CA through the intermediate sent`);
        assert.equal(got.alpn, 'h2');
      }
      assert.equal((await handshake('unknown.example.com')).subject, `${def}.example.com`, 'an unknown name gets the default');
      assert.equal((await handshake(undefined)).subject, `${def}.example.com`, 'no SNI gets the default');
    });
  }

  test('after the handshake the connection is served over HTTP/2 (a session on the handed-over socket)', async () => {
    const port = (server.address() as AddressInfo).port;
    const tlsOptions = { port, host: '127.0.0.1', servername: 'p256.example.com', ca: readFileSync(ca.caFile), ALPNProtocols: ['h2'] };
    const session = http2Connect(`https://p256.example.com:${port}`, { createConnection: () => tlsConnect(tlsOptions) });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/' });
        let text = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => (text += d));
        req.on('end', () => resolve(text));
        req.on('error', reject);
        setTimeout(() => reject(new Error(`no HTTP/2 answer within 3 s (got ${JSON.stringify(text)})`)), 3000).unref();
      });
      assert.equal(body, `h2 p256.example.com:${port}`);
    } finally {
      session.destroy();
    }
  });
});
