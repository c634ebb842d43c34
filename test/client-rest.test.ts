// The HTTPS client of src/client against kubewire's own API server in this process (a store,
// the API, its HTTPS listener with a fresh PKI on 127.0.0.1): kubeconfigs read as client-go
// reads them, and refused with one line naming the file and field; an Informer over the
// client; watches that resume from the last resourceVersion (bookmarks included) when the
// server ends them, list again only on 410, and wait out a server that is away; a server
// certificate from another CA, and a client certificate the server does not know, refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { resourceNamed } from '../src/api/resources.ts';
import type { KubeObject, Service } from '../src/api/types.ts';
import { Api } from '../src/apiserver/api.ts';
import { HttpsListener } from '../src/apiserver/https.ts';
import { Informer } from '../src/apiserver/informer.ts';
import { ApiServer } from '../src/apiserver/server.ts';
import { Store } from '../src/apiserver/store.ts';
import { KubeconfigError, loadRestConfig, type RestConfig } from '../src/client/kubeconfig.ts';
import { RestClient, TransportError } from '../src/client/rest.ts';
import { backoffMs, WatchLines } from '../src/client/watch.ts';
import { freePort } from '../src/identity/endpoint.ts';
import { kubeconfigFor, printKubeconfig } from '../src/identity/kubeconfig.ts';
import { createPki, serverNames, type ClusterPki } from '../src/identity/pki.ts';
import { waitFor } from './kube.ts';

const services = resourceNamed('services')!;
const svc = (name: string): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } });

test('watch lines: events cut at newlines across chunks; a line that is no event breaks the stream', () => {
  const w = new WatchLines();
  assert.deepEqual(w.push('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"MOD'), [{ type: 'ADDED', object: { metadata: { name: 'a' } } }]);
  assert.equal(w.push('IFIED","object":{"metadata":{"name":"a"}}}\n')[0]!.type, 'MODIFIED');
  assert.deepEqual(w.push('<html>\n'), []);
  assert.equal(w.broken, true);
  assert.deepEqual([0, 1, 2, 5, 30].map((n) => backoffMs(n, () => 0.5)), [200, 400, 800, 4000, 4000]);
});

describe('the HTTPS client against kubewire\'s API server', () => {
  let dir: string;
  let store: Store;
  let api: Api;
  let server: ApiServer;
  let https: HttpsListener;
  let pki: ClusterPki;
  let port: number;
  let kubeconfig: string;
  let config: RestConfig;
  const listen = async () => (https = await HttpsListener.listen(server, { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key }, { host: '127.0.0.1', port }));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kwt-client-'));
    store = new Store(join(dir, 'store.db'), { eventLogSize: 5 }); // a short log: a watch 6 events behind gets 410
    api = new Api(store);
    api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    // Bookmarks every 100 ms, so that the resume after a timeout starts from one.
    server = new ApiServer(api, {}, { bookmarkMs: 100 });
    await server.listen(join(dir, 'api.sock'));
    pki = await createPki(serverNames({}));
    port = await freePort();
    await listen();
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, printKubeconfig(kubeconfigFor('c1', { server: `https://127.0.0.1:${port}`, ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key })));
    config = loadRestConfig({ kubeconfig });
  });
  after(async () => {
    await https.close();
    await server.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('kubeconfigs: the current context or --context, files by path relative to the kubeconfig, a token; each fault one line naming it', () => {
    assert.equal(config.server, `https://127.0.0.1:${port}`);
    assert.equal(config.source, `kubeconfig ${kubeconfig}, context kubewire-c1`);
    writeFileSync(join(dir, 'ca.crt'), pki.ca.cert);
    writeFileSync(join(dir, 'token'), 'abc\n');
    const other = join(dir, 'other');
    writeFileSync(other, `apiVersion: v1
kind: Config
clusters: [{name: x, cluster: {server: "https://10.0.0.1:6443/", certificate-authority: ca.crt}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: ctx, context: {cluster: x, user: u}}, {name: dangling, context: {cluster: nowhere}}]
`);
    const c = loadRestConfig({ kubeconfig: other, context: 'ctx' });
    assert.deepEqual([c.server, c.ca, c.token], ['https://10.0.0.1:6443', pki.ca.cert, 'abc']);
    const fails = (o: Parameters<typeof loadRestConfig>[0], re: RegExp) => assert.throws(() => loadRestConfig(o), (e: unknown) => e instanceof KubeconfigError && re.test(e.message) && !e.message.includes('\n'));
    fails({ kubeconfig: other }, /no current-context; give --context/);
    fails({ kubeconfig: other, context: 'dangling' }, /names cluster "nowhere", which does not exist/);
    fails({ kubeconfig: join(dir, 'missing') }, /kubeconfig .*missing: no such file/);
    fails({ kubeconfig: dir }, /is a directory/);
    fails({ env: {}, home: dir }, /no kubeconfig: .*give --kubeconfig/);
    const swapped = join(dir, 'swapped');
    writeFileSync(swapped, printKubeconfig(kubeconfigFor('c1', { server: 'https://127.0.0.1:1', ca: pki.ca.cert, cert: pki.admin.cert, key: pki.server.key })));
    fails({ kubeconfig: swapped }, /client-key is not the key of client-certificate/);
    const junk = join(dir, 'junk');
    writeFileSync(junk, printKubeconfig(kubeconfigFor('c1', { server: 'unix:///run/x.sock', ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key })));
    fails({ kubeconfig: junk }, /server "unix:\/\/\/run\/x.sock": only https:\/\//);
  });

  test('an Informer over the client: list, then every change; a server that ends the watch is watched again from where it was, not listed', async () => {
    const client = new RestClient(config);
    const seen: string[] = [];
    let lists = 0;
    const list = client.list.bind(client);
    client.list = ((...a: Parameters<typeof list>) => (lists++, list(...a))) as typeof client.list;
    api.create(svc('a'));
    const inf = new Informer<Service>(client, services, (o) => seen.push(o ? o.metadata.name : 'LIST'), () => undefined);
    try {
      await inf.start();
      assert.deepEqual([...inf.items.keys()], ['default/a']);
      api.create(svc('b'));
      await waitFor('b', async () => inf.items.has('default/b'));
      // The server closes every watch (as at its timeoutSeconds): the client watches again from its last resourceVersion.
      await server.close();
      server = new ApiServer(api, {}, { bookmarkMs: 100 });
      await server.listen(join(dir, 'api.sock'));
      await https.close();
      await listen();
      api.create(svc('c'));
      await waitFor('c after the server came back', async () => inf.items.has('default/c'), 10_000);
      assert.equal(lists, 1, 'resumed, not listed again');
      assert.deepEqual(seen, ['LIST', 'b', 'c']);
      assert.equal(client.reachability.since, undefined);
    } finally {
      inf.stop();
      client.close();
    }
  });

  test('410: a watch too far behind ends and the Informer lists again; a server away is waited for and reported', async () => {
    const client = new RestClient(config);
    const changes: Array<boolean> = [];
    client.onReachability = (r) => changes.push(r.since === undefined);
    let ended = 0;
    const events: KubeObject[] = [];
    const rv = (await client.list(services)).metadata.resourceVersion;
    const stop = await client.watch(services, undefined, { resourceVersion: rv }, (e) => events.push(e.object), () => ended++);
    try {
      await https.close();
      await waitFor('the client hearing the server is away', async () => changes.includes(false), 5000);
      api.create(svc('d'));
      await listen();
      await waitFor('d once the server is back', async () => events.some((o) => o.metadata.name === 'd'), 15_000);
      assert.deepEqual(changes, [false, true]);
      assert.equal(ended, 0, 'a resumable watch is not ended');
      // Away while more happens than the server's log keeps: it cannot resume, the caller must list again.
      await https.close();
      await waitFor('away again', async () => changes.length === 3, 5000);
      for (let i = 0; i < 8; i++) api.create(svc(`e${i}`));
      await listen();
      await waitFor('the watch ended for a relist (410)', async () => ended === 1, 15_000);
      assert.ok(!events.some((o) => o.metadata.name === 'e7'), 'nothing of the gap was made up');
      await assert.rejects(client.watch(services, undefined, { resourceVersion: rv }, () => undefined), (e: unknown) => (e as { code?: number }).code === 410);
    } finally {
      stop();
      client.close();
    }
  });

  test('a server certificate the CA did not sign, and a client certificate the server does not know, are refused (permanently / 401)', async () => {
    const stranger = await createPki(serverNames({}));
    const wrongCa = new RestClient({ ...config, ca: stranger.ca.cert });
    await assert.rejects(wrongCa.list(services), (e: unknown) => e instanceof TransportError && e.permanent && /not the one the kubeconfig trusts/.test(e.message));
    const wrongUser = new RestClient({ ...config, cert: stranger.admin.cert, key: stranger.admin.key });
    await assert.rejects(wrongUser.list(services), (e: unknown) => (e as { code?: number; reason?: string }).code === 401 && (e as { reason?: string }).reason === 'Unauthorized');
    const nowhere = new RestClient({ ...config, server: 'https://127.0.0.1:1' });
    await assert.rejects(nowhere.list(services), (e: unknown) => e instanceof TransportError && !e.permanent && /ECONNREFUSED/.test(e.message));
    for (const c of [wrongCa, wrongUser, nowhere]) c.close();
  });
});
