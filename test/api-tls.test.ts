// The cluster's API as kubectl reaches it, as kind's clusters serve it: https://127.0.0.1:PORT
// with the cluster's CA and the admin's client certificate from the kubeconfig `up` merged.
// The real kubectl 1.32 runs `version` and `get --raw /readyz` with that file; a request
// without a certificate, or with one from another CA, gets kube-apiserver's 401 Status; the
// server's certificate verifies against the CA for 127.0.0.1 and localhost; a daemon killed
// with -9 and started again by `up` serves on the same port with the same CA; `down` removes
// the kubeconfig entries. Then the same through a cluster in its own kernel (UML), whose
// port is on the host's 127.0.0.1, relayed to the guest (TLS end to end), made by root and
// by user nobody (their state in $XDG_STATE_HOME, their kubeconfig in their home).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { createPki, serverNames } from '../src/identity/pki.ts';
import { umlMissing } from '../src/supervisor/uml.ts';
import { isRoot } from './helpers.ts';
import { waitFor, type Result } from './kube.ts';

const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
const noKubectl = existsSync(KUBECTL) ? false : `${KUBECTL} is not installed (google-cloud-cli's kubectl)`;
const skip = !isRoot ? 'needs root to create network namespaces' : false;

const BIN = join(import.meta.dirname, '..', 'bin', 'kubewire.js');
const UNAUTHORIZED = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };

const NOBODY = 65534;

/** A program run as the test's user (root, or nobody with `uid`), bounded in time. */
function run(argv: string[], env: NodeJS.ProcessEnv, uid?: number, timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], ...(uid === undefined ? {} : { uid, gid: uid }) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 137, stdout, stderr });
    });
  });
}

/** A cluster in a scratch directory for one describe block, made by `up` before and removed by `down` after. */
interface ScratchCluster {
  cluster: string;
  scratch: string;
  /** The file `up` merged into ($KUBECONFIG). */
  kubeconfig: string;
  /** Its state directory's cluster folder (on the host). */
  dir: string;
  upOut: string;
  uid?: number;
  kubewire(args: string[], timeoutMs?: number): Promise<Result>;
  kubectl(args: string[]): Promise<Result>;
}

function scratchCluster(cluster: string, upArgs: string[], o: { uid?: number; timeoutMs: number }): ScratchCluster {
  const c = { cluster, uid: o.uid } as ScratchCluster;
  // As a user runs them: nobody's state in $XDG_STATE_HOME, everyone's kubeconfig in $KUBECONFIG.
  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, HOME: c.scratch, XDG_STATE_HOME: join(c.scratch, 'state'), KUBECONFIG: c.kubeconfig };
    delete e.NODE_EXTRA_CA_CERTS;
    delete e.KUBEWIRE_CLUSTER;
    if (o.uid === undefined) e.KUBEWIRE_STATE_DIR = join(c.scratch, 'state', 'kubewire'); // root's would be /var/lib/kubewire
    else delete e.KUBEWIRE_STATE_DIR;
    return e;
  };
  c.kubewire = (args, timeoutMs) => run([process.execPath, BIN, ...args, '--cluster', cluster], env(), o.uid, timeoutMs);
  c.kubectl = (args) => run([KUBECTL, '--cache-dir', join(c.scratch, 'cache'), ...args], env(), o.uid);
  before(async () => {
    c.scratch = mkdtempSync(join(tmpdir(), `kw-api-tls-${cluster}-`));
    if (o.uid !== undefined) chownSync(c.scratch, o.uid, o.uid);
    c.kubeconfig = join(c.scratch, 'kube', 'config');
    c.dir = join(c.scratch, 'state', 'kubewire', cluster);
    const up = await c.kubewire(['up', ...upArgs], o.timeoutMs);
    assert.equal(up.code, 0, up.stderr || up.stdout);
    c.upOut = up.stdout;
  });
  after(async () => {
    await c.kubewire(['down'], 60_000);
    rmSync(c.scratch, { recursive: true, force: true });
  });
  return c;
}

/** One HTTPS GET to the API at 127.0.0.1:port; resolves with the status and body (rejects on a TLS failure). */
function get(port: number, o: RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/version', agent: false, timeout: 30_000, ...o }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

interface Entries {
  clusters: { name: string; cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { name: string; user: { 'client-certificate-data': string; 'client-key-data': string } }[];
  contexts: { name: string }[];
  'current-context': string;
}

const readConfig = (file: string) => parse(readFileSync(file, 'utf8')) as Entries;
const decode = (b64: string) => Buffer.from(b64, 'base64').toString();

/** What a client needs, out of the kubeconfig: the server's port, the CA and the admin's pair. */
function credentials(file: string, cluster: string) {
  const k = readConfig(file);
  const name = `kubewire-${cluster}`;
  const c = k.clusters.find((e) => e.name === name)!.cluster;
  const u = k.users.find((e) => e.name === name)!.user;
  return { port: Number(new URL(c.server).port), server: c.server, ca: decode(c['certificate-authority-data']), cert: decode(u['client-certificate-data']), key: decode(u['client-key-data']) };
}

/** The checks every cluster passes, whatever its kernel and user: kubectl with the merged kubeconfig, 401s, the server's names, down. */
function servesKubectl(name: string, c: ScratchCluster): void {
  test(`${name}: up merged context, cluster and user kubewire-${c.cluster} (0600) and made it current, saying so as kind does`, () => {
    assert.match(c.upOut, new RegExp(`^Set kubectl context to "kubewire-${c.cluster}"`, 'm'));
    assert.match(c.upOut, new RegExp(`^kubectl cluster-info --context kubewire-${c.cluster}$`, 'm'));
    const st = statSync(c.kubeconfig);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.uid, c.uid ?? 0, "the user's own file");
    const k = readConfig(c.kubeconfig);
    assert.equal(k['current-context'], `kubewire-${c.cluster}`);
    assert.deepEqual([k.clusters, k.users, k.contexts].map((s) => s.map((e) => e.name)), Array(3).fill([`kubewire-${c.cluster}`]));
    const cred = credentials(c.kubeconfig, c.cluster);
    assert.equal(new X509Certificate(cred.cert).subject, 'O=kubeadm:cluster-admins\nCN=kubernetes-admin');
    assert.equal(readFileSync(join(c.dir, 'pki', 'ca.crt'), 'utf8'), cred.ca);
  });

  test(`${name}: kubectl version, get --raw /readyz, auth whoami and auth can-i with that kubeconfig`, { skip: noKubectl }, async () => {
    const version = await c.kubectl(['version', '-o', 'json']);
    assert.equal(version.code, 0, version.stderr);
    const server = (JSON.parse(version.stdout) as { serverVersion: { major: string; minor: string; gitVersion: string } }).serverVersion;
    assert.deepEqual([server.major, server.minor, server.gitVersion], ['1', '32', 'v1.32.0-kubewire']);
    const plain = await c.kubectl(['version']);
    assert.match(plain.stdout, /^Server Version: v1\.32\.0-kubewire$/m);
    const ready = await c.kubectl(['get', '--raw', '/readyz']);
    assert.deepEqual([ready.code, ready.stdout], [0, 'ok'], ready.stderr);
    // Who the certificate makes you, and what you may do (SelfSubjectReview, SelfSubjectAccessReview).
    const whoami = await c.kubectl(['auth', 'whoami', '-o', 'json']);
    assert.equal(whoami.code, 0, whoami.stderr);
    assert.deepEqual((JSON.parse(whoami.stdout) as { status: { userInfo: unknown } }).status.userInfo, { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] });
    const canI = await c.kubectl(['auth', 'can-i', 'create', 'pods']);
    assert.deepEqual([canI.code, canI.stdout.trim()], [0, 'yes'], canI.stderr);
  });

  test(`${name}: kubewire kubeconfig prints the same entries without writing`, async () => {
    const printed = await c.kubewire(['kubeconfig']);
    assert.equal(printed.code, 0, printed.stderr);
    const k = parse(printed.stdout) as Entries;
    const merged = readConfig(c.kubeconfig);
    assert.deepEqual([k.clusters, k.users, k['current-context']], [merged.clusters, merged.users, `kubewire-${c.cluster}`]);
  });

  test(`${name}: no client certificate, or one from another CA: 401 Unauthorized as a Status`, async () => {
    const cred = credentials(c.kubeconfig, c.cluster);
    const anonymous = await get(cred.port, { ca: cred.ca });
    assert.equal(anonymous.status, 401);
    assert.deepEqual(JSON.parse(anonymous.body), UNAUTHORIZED);
    const stranger = (await createPki(serverNames({}))).admin;
    const other = await get(cred.port, { ca: cred.ca, cert: stranger.cert, key: stranger.key, path: '/api/v1/namespaces/default/pods' });
    assert.deepEqual([other.status, JSON.parse(other.body)], [401, UNAUTHORIZED]);
    assert.equal((await get(cred.port, { ca: cred.ca, cert: cred.cert, key: cred.key })).status, 200);
  });

  test(`${name}: the server's certificate verifies against the CA for 127.0.0.1 and localhost, not for another name`, async () => {
    const cred = credentials(c.kubeconfig, c.cluster);
    assert.equal(cred.server, `https://127.0.0.1:${cred.port}`);
    assert.equal((await get(cred.port, { ca: cred.ca, cert: cred.cert, key: cred.key })).status, 200); // checked against IP 127.0.0.1
    assert.equal((await get(cred.port, { ca: cred.ca, cert: cred.cert, key: cred.key, servername: 'localhost' })).status, 200);
    await assert.rejects(get(cred.port, { ca: cred.ca, servername: 'example.com' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    const stranger = (await createPki(serverNames({}))).ca;
    await assert.rejects(get(cred.port, { ca: stranger.cert }), (e: NodeJS.ErrnoException) => /SELF_SIGNED|UNABLE_TO_VERIFY/.test(e.code ?? ''));
  });
}

/** `down` removes the three entries and the current-context that named them. */
function downForgets(name: string, c: ScratchCluster): void {
  test(`${name}: down removes the entries and the current-context that named them`, async () => {
    const down = await c.kubewire(['down']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`^removed context kubewire-${c.cluster} from ${c.kubeconfig}$`, 'm'));
    const k = readConfig(c.kubeconfig);
    assert.deepEqual([k.clusters.length, k.users.length, k.contexts.length, k['current-context']], [0, 0, 0, '']);
  });
}

describe('the API over HTTPS, with the kubeconfig kind would write', { skip, timeout: 300_000 }, () => {
  const c = scratchCluster('kapit', ['--nodes', '1'], { timeoutMs: 120_000 });
  servesKubectl('host kernel', c);

  test('a daemon killed with -9 and started again by up: the same port, the same CA, kubectl served again', { skip: noKubectl }, async () => {
    const before = credentials(c.kubeconfig, c.cluster);
    const pid = Number(readFileSync(join(c.dir, 'daemon.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    // Until its last thread is gone (a zombie leader may still have threads holding the socket), then refused.
    await waitFor('the port refusing connections', () => get(before.port, { ca: before.ca }).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED'), 10_000);
    const up = await c.kubewire(['up'], 120_000);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /daemon restarted/);
    const again = credentials(c.kubeconfig, c.cluster);
    assert.deepEqual([again.port, again.ca], [before.port, before.ca]);
    const ready = await c.kubectl(['get', '--raw', '/readyz']);
    assert.deepEqual([ready.code, ready.stdout], [0, 'ok'], ready.stderr);
    // Who the certificate makes you, and what you may do (SelfSubjectReview, SelfSubjectAccessReview).
    const whoami = await c.kubectl(['auth', 'whoami', '-o', 'json']);
    assert.equal(whoami.code, 0, whoami.stderr);
    assert.deepEqual((JSON.parse(whoami.stdout) as { status: { userInfo: unknown } }).status.userInfo, { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] });
    const canI = await c.kubectl(['auth', 'can-i', 'create', 'pods']);
    assert.deepEqual([canI.code, canI.stdout.trim()], [0, 'yes'], canI.stderr);
  });

  downForgets('host kernel', c);
});

const noUml = umlMissing() ? `user-mode Linux is missing: ${umlMissing()}` : false;

describe("a cluster in its own kernel (UML): its API on the host's 127.0.0.1, TLS relayed to the guest", { skip: skip || noUml, timeout: 600_000 }, () => {
  const c = scratchCluster('kapit2', ['--kernel', 'uml', '--nodes', '1'], { timeoutMs: 300_000 });
  servesKubectl('UML', c);
  downForgets('UML', c);
});

describe('the same for an ordinary user (nobody): their state, their home, their kubeconfig', { skip: skip || noUml, timeout: 600_000 }, () => {
  const c = scratchCluster('kapit2', ['--nodes', '1'], { uid: NOBODY, timeoutMs: 300_000 });
  servesKubectl('nobody, UML', c);
  downForgets('nobody, UML', c);
});
