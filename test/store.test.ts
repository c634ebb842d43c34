// The control plane's store: resourceVersions, optimistic concurrency, list+watch, restart.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { KubeObject } from '../src/api/types.ts';
import { Store, StoreError, type WatchEvent } from '../src/apiserver/store.ts';

const pod = (name: string, extra: Partial<KubeObject> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'c' }] }, ...extra });

async function withStore(fn: (store: Store, path: string) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-store-'));
  const store = new Store(join(dir, 'state.db'));
  try {
    await fn(store, join(dir, 'state.db'));
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('create assigns uid, resourceVersion, generation; duplicates are refused', () => withStore((store) => {
  const a = store.create(pod('a'));
  assert.match(a.metadata.uid!, /^[0-9a-f-]{36}$/);
  assert.equal(a.metadata.resourceVersion, '1');
  assert.equal(a.metadata.generation, 1);
  assert.throws(() => store.create(pod('a')), (e: unknown) => e instanceof StoreError && e.reason === 'AlreadyExists' && e.code === 409);
  assert.equal(store.create(pod('a', { metadata: { name: 'a', namespace: 'other' } })).metadata.resourceVersion, '2');
}));

test('update with a stale resourceVersion conflicts; spec changes bump generation, status changes do not', () => withStore((store) => {
  const a = store.create(pod('a'));
  const b = store.update({ ...a, status: { phase: 'Running' } });
  assert.equal(b.metadata.generation, 1);
  assert.throws(() => store.update({ ...a, status: { phase: 'Failed' } }), (e: unknown) => e instanceof StoreError && e.reason === 'Conflict');
  const c = store.update({ ...b, spec: { containers: [] } });
  assert.equal(c.metadata.generation, 2);
  assert.equal(c.metadata.uid, a.metadata.uid);
  const d = store.mutate({ kind: 'Pod', namespace: 'default', name: 'a' }, (o) => ({ ...o, status: { phase: 'Succeeded' } }));
  assert.equal(Number(d.metadata.resourceVersion), Number(c.metadata.resourceVersion) + 1);
  assert.deepEqual(store.get({ kind: 'Pod', namespace: 'default', name: 'a' }).status, { phase: 'Succeeded' });
  assert.throws(() => store.get({ kind: 'Pod', namespace: 'default', name: 'zz' }), /pods "zz" not found$/);
}));

test('watch replays from a resourceVersion, then streams; a failed transaction emits nothing', () => withStore((store) => {
  store.create(pod('a'));
  const { resourceVersion } = store.list('Pod');
  store.create(pod('b'));
  const seen: string[] = [];
  const stop = store.watch('Pod', 'default', resourceVersion, (e: WatchEvent, rv) => seen.push(`${e.type} ${e.object.metadata.name} ${rv}`));
  store.delete({ kind: 'Pod', namespace: 'default', name: 'a' });
  store.create(pod('c', { metadata: { name: 'c', namespace: 'elsewhere' } }));
  assert.throws(() => store.create(pod('b')));
  stop();
  store.create(pod('d'));
  assert.deepEqual(seen, ['ADDED b 2', 'DELETED a 3']);
  assert.deepEqual(store.list('Pod', 'default').items.map((p) => p.metadata.name), ['b', 'd']);
  // All namespaces: ordered by namespace, then name.
  assert.deepEqual(store.list('Pod').items.map((p) => `${p.metadata.namespace}/${p.metadata.name}`), ['default/b', 'default/d', 'elsewhere/c']);
}));

test('every watcher sees events in resourceVersion order, even when another watcher writes as it hears one', () => withStore(async (store) => {
  const seen: string[] = [];
  // Like the scheduler: hearing of a new pod, it binds it at once.
  store.watch('Pod', undefined, store.currentRV(), (e) => {
    if (e.type === 'ADDED') store.update({ ...e.object, metadata: { ...e.object.metadata, resourceVersion: undefined }, spec: { nodeName: 'n1' } });
  });
  store.watch('Pod', undefined, store.currentRV(), (e, rv) => seen.push(`${rv} ${e.type}`));
  store.create(pod('a'));
  assert.deepEqual(seen, ['1 ADDED', '2 MODIFIED']);
  // A watcher that throws does not keep the event from the others, nor fail the committed write.
  store.watch('Pod', undefined, store.currentRV(), () => {
    throw new Error('watcher bug');
  });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    assert.equal(store.create(pod('b')).metadata.name, 'b');
  } finally {
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
  }
  assert.deepEqual(seen.slice(2), ['3 ADDED', '4 MODIFIED']);
  assert.ok(warnings.some((w) => /watcher of Pod failed on ADDED b: watcher bug/.test(w)));
}));

test('state survives a restart of the store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-store-'));
  try {
    const first = new Store(join(dir, 'state.db'));
    first.create(pod('a'));
    first.create(pod('b'));
    first.close();
    const second = new Store(join(dir, 'state.db'));
    assert.equal(second.currentRV(), 2);
    assert.deepEqual(second.list('Pod').items.map((p) => p.metadata.name), ['a', 'b']);
    assert.equal(second.create(pod('c')).metadata.resourceVersion, '3');
    second.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a watch from a compacted resourceVersion gets 410 Gone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kwt-store-'));
  const store = new Store(join(dir, 'state.db'), { eventLogSize: 10 });
  try {
    for (let i = 0; i < 30; i++) store.create(pod(`p${i}`));
    assert.throws(() => store.watch('Pod', undefined, 1, () => {}), (e: unknown) => e instanceof StoreError && e.code === 410 && /too old resource version: 1/.test(e.message));
    const seen: number[] = [];
    store.watch('Pod', undefined, 25, (_e, rv) => seen.push(rv))();
    assert.deepEqual(seen, [26, 27, 28, 29, 30]);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reads come from memory: a rolled-back transaction (and savepoint) leaves no trace; indexes follow every write; objects are frozen', () => withStore((store, path) => {
  const bound = (name: string, node: string) => pod(name, { spec: { nodeName: node, containers: [] } });
  store.create(bound('a', 'n1'));
  assert.throws(() => store.write(() => {
    store.create(bound('b', 'n1'));
    store.delete({ kind: 'Pod', namespace: 'default', name: 'a' });
    assert.equal(store.tryGet({ kind: 'Pod', namespace: 'default', name: 'b' })?.metadata.name, 'b', 'a transaction reads its own writes');
    throw new Error('abort');
  }), /abort/);
  assert.deepEqual(store.list('Pod').items.map((p) => p.metadata.name), ['a'], 'the rollback undid the create and the delete');
  assert.equal(store.currentRV(), 1, 'and the numbering');
  assert.deepEqual(store.byIndex('Pod', 'nodeName', 'n1').map((p) => p.metadata.name), ['a']);
  // A savepoint that fails inside a transaction that goes on.
  store.write(() => {
    store.create(bound('c', 'n2'));
    try {
      store.write(() => {
        store.create(bound('d', 'n2'));
        throw new Error('inner');
      });
    } catch {
      // the outer transaction carries on
    }
  });
  assert.deepEqual(store.byIndex('Pod', 'nodeName', 'n2').map((p) => p.metadata.name), ['c']);
  // Moving an object between index values, and deleting it.
  store.mutate({ kind: 'Pod', namespace: 'default', name: 'c' }, (o) => ({ ...o, spec: { nodeName: 'n1', containers: [] } }));
  assert.deepEqual(store.byIndex('Pod', 'nodeName', 'n1').map((p) => p.metadata.name).sort(), ['a', 'c']);
  assert.deepEqual(store.byIndex('Pod', 'nodeName', 'n2'), []);
  store.delete({ kind: 'Pod', namespace: 'default', name: 'a' });
  assert.deepEqual(store.byIndex('Pod', 'nodeName', 'n1').map((p) => p.metadata.name), ['c']);
  const c = store.get({ kind: 'Pod', namespace: 'default', name: 'c' });
  assert.throws(() => ((c.metadata as { name: string }).name = 'x'), TypeError, 'stored objects are frozen');
  assert.deepEqual(JSON.parse(`[${store.listText('Pod').items.join(',')}]`), store.list('Pod').items, 'the stored text is the object');
  const again = new Store(path);
  try {
    assert.deepEqual(again.byIndex('Pod', 'nodeName', 'n1').map((p) => p.metadata.name), ['c'], 'indexes are rebuilt from disk');
    assert.equal(again.currentRV(), store.currentRV());
  } finally {
    again.close();
  }
}));
