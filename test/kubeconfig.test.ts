// kubeconfig files as kind writes them: which file `up` writes, the merge (entries replaced or
// appended, comments and other entries kept, current-context set), the removal by `down`, and
// the file adapter's lock, modes and one-line errors. No root needed: temp files only.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse } from 'yaml';
import { contextName, kubeconfigFor, KubeconfigError, kubeconfigPaths, kubeconfigTarget, mergeKubeconfig, printKubeconfig, removeFromKubeconfig } from '../src/identity/kubeconfig.ts';
import { mergeIntoUserKubeconfig, removeFromUserKubeconfigs } from '../src/identity/kubeconfig-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'kubewire-kubeconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const creds = (port: number) => ({ server: `https://127.0.0.1:${port}`, ca: 'CA PEM\n', cert: 'CERT PEM\n', key: 'KEY PEM\n' });
const kc = (cluster: string, port = 6443) => kubeconfigFor(cluster, creds(port));

// A user's file as kubectl writes one, with a comment and another cluster (kind's).
const USER_FILE = `# my clusters
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: S0lORA==
    server: https://127.0.0.1:40000 # kind's port
  name: kind-kind
contexts:
- context:
    cluster: kind-kind
    user: kind-kind
  name: kind-kind
current-context: kind-kind
kind: Config
preferences: {}
users:
- name: kind-kind
  user:
    token: abc
`;

describe('which kubeconfig', () => {
  const home = '/home/u';
  const none = () => false;
  test('--kubeconfig wins, alone', () => {
    assert.equal(kubeconfigTarget('/x/config', { KUBECONFIG: '/a:/b' }, home, () => true), '/x/config');
    assert.deepEqual(kubeconfigPaths('/x/config', { KUBECONFIG: '/a:/b' }, home), ['/x/config']);
  });
  test("$KUBECONFIG: its first existing file, else its last; empties and repeats dropped", () => {
    assert.equal(kubeconfigTarget(undefined, { KUBECONFIG: '/a:/b:/c' }, home, (p) => p === '/b' || p === '/c'), '/b');
    assert.equal(kubeconfigTarget(undefined, { KUBECONFIG: '/a:/b:/c' }, home, none), '/c');
    assert.deepEqual(kubeconfigPaths(undefined, { KUBECONFIG: ':/a::/b:/a:' }, home), ['/a', '/b']);
  });
  test('else ~/.kube/config (also for an empty $KUBECONFIG)', () => {
    assert.equal(kubeconfigTarget(undefined, {}, home, none), '/home/u/.kube/config');
    assert.equal(kubeconfigTarget(undefined, { KUBECONFIG: '' }, home, none), '/home/u/.kube/config');
  });
});

describe('merge', () => {
  test("into nothing: the cluster's own kubeconfig, as printed", () => {
    const merged = parse(mergeKubeconfig('', kc('a')));
    assert.deepEqual(merged, parse(printKubeconfig(kc('a'))));
    assert.equal(merged['current-context'], 'kubewire-a');
    assert.equal(merged.clusters[0].cluster.server, 'https://127.0.0.1:6443');
    assert.equal(Buffer.from(merged.users[0].user['client-key-data'], 'base64').toString(), 'KEY PEM\n');
    assert.deepEqual(merged.contexts, [{ name: 'kubewire-a', context: { cluster: 'kubewire-a', user: 'kubewire-a' } }]);
  });

  test("into a user's file: others and comments kept, ours appended and current", () => {
    const text = mergeKubeconfig(USER_FILE, kc('a'));
    assert.match(text, /^# my clusters$/m);
    assert.match(text, /# kind's port/);
    const merged = parse(text);
    assert.deepEqual(merged.clusters.map((c: { name: string }) => c.name), ['kind-kind', 'kubewire-a']);
    assert.deepEqual(merged.users.map((c: { name: string }) => c.name), ['kind-kind', 'kubewire-a']);
    assert.deepEqual(merged.users[0], { name: 'kind-kind', user: { token: 'abc' } });
    assert.equal(merged['current-context'], 'kubewire-a');
  });

  test('again, with a new port: replaced in place, not repeated', () => {
    const twice = parse(mergeKubeconfig(mergeKubeconfig(mergeKubeconfig(USER_FILE, kc('a', 1)), kc('b', 2)), kc('a', 3)));
    assert.deepEqual(twice.clusters.map((c: { name: string }) => c.name), ['kind-kind', 'kubewire-a', 'kubewire-b']);
    assert.equal(twice.clusters[1].cluster.server, 'https://127.0.0.1:3');
    assert.equal(twice.contexts.length, 3);
    assert.equal(twice['current-context'], 'kubewire-a');
  });

  test('into a file a removal emptied: entries written as blocks, as kubectl writes them', () => {
    const emptied = removeFromKubeconfig(mergeKubeconfig('', kc('a')), contextName('a'))!;
    assert.match(emptied, /^clusters: \[\]$/m);
    const text = mergeKubeconfig(emptied, kc('b'));
    assert.match(text, /^clusters:\n- cluster:\n {4}certificate-authority-data: /m);
    assert.equal(parse(text).clusters[0].name, 'kubewire-b');
  });

  test("kubectl's empty sections (null) and a file without apiVersion/kind", () => {
    const merged = parse(mergeKubeconfig('clusters: null\nusers: null\ncontexts: null\ncurrent-context: ""\n', kc('a')));
    assert.equal(merged.clusters.length, 1);
    assert.equal(merged.apiVersion, 'v1');
    assert.equal(merged.kind, 'Config');
  });

  test('a file that is not a kubeconfig: one line naming the file and what is wrong', () => {
    assert.throws(() => mergeKubeconfig('clusters: [\n', kc('a'), '/k/config'), (e: Error) => e instanceof KubeconfigError && /^kubeconfig \/k\/config is not valid YAML: /.test(e.message) && !e.message.includes('\n'));
    assert.throws(() => mergeKubeconfig('clusters: {a: 1}\n', kc('a'), '/k/config'), { message: 'kubeconfig /k/config: clusters is not a list' });
    assert.throws(() => mergeKubeconfig('- a\n- b\n', kc('a'), '/k/config'), { message: 'kubeconfig /k/config is not a kubeconfig: its top level is not a mapping' });
  });
});

describe('remove', () => {
  test('the three entries go, the rest and comments stay; current-context cleared when it was ours', () => {
    const text = removeFromKubeconfig(mergeKubeconfig(USER_FILE, kc('a')), contextName('a'))!;
    assert.match(text, /^# my clusters$/m);
    const left = parse(text);
    assert.deepEqual([left.clusters.length, left.users.length, left.contexts.length], [1, 1, 1]);
    assert.equal(left.clusters[0].name, 'kind-kind');
    assert.equal(left['current-context'], '');
  });
  test("current-context kept when it names another cluster", () => {
    const both = mergeKubeconfig(mergeKubeconfig(USER_FILE, kc('a')), kc('b'));
    assert.equal(parse(removeFromKubeconfig(both, contextName('a'))!)['current-context'], 'kubewire-b');
  });
  test('nothing of ours: unchanged (undefined), so the file is not rewritten', () => {
    assert.equal(removeFromKubeconfig(USER_FILE, contextName('a')), undefined);
    assert.equal(removeFromKubeconfig('', contextName('a')), undefined);
  });
});

describe('files', () => {
  test('a new file is 0600 in a 0755 directory, with no lock left behind', async () => {
    const home = join(dir, 'home1');
    const file = await mergeIntoUserKubeconfig(kc('a'), { env: {}, home });
    assert.equal(file, join(home, '.kube', 'config'));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, '.kube')).mode & 0o777, 0o755);
    assert.equal(existsSync(`${file}.lock`), false);
    assert.equal(parse(readFileSync(file, 'utf8'))['current-context'], 'kubewire-a');
  });

  test('a held lock: waited for, then one line naming it', async () => {
    const file = join(dir, 'locked', 'config');
    mkdirSync(join(dir, 'locked'));
    writeFileSync(`${file}.lock`, '');
    const t0 = Date.now();
    await assert.rejects(mergeIntoUserKubeconfig(kc('a'), { explicit: file, lockWaitMs: 300 }), { message: `kubeconfig ${file} is locked: ${file}.lock exists (kubectl, kind or kubewire is writing it; remove that file if none is)` });
    assert.ok(Date.now() - t0 >= 300, 'it waited');
    assert.equal(existsSync(file), false, 'nothing written');
    // Released while waiting: the write goes through.
    setTimeout(() => rmSync(`${file}.lock`), 150);
    await mergeIntoUserKubeconfig(kc('a'), { explicit: file, lockWaitMs: 3000 });
    assert.equal(parse(readFileSync(file, 'utf8'))['current-context'], 'kubewire-a');
  });

  test('an unreadable file: one line, and the lock released', async (t) => {
    if (process.geteuid?.() === 0) return t.skip('root reads every file: needs an ordinary user');
    const file = join(dir, 'unreadable');
    writeFileSync(file, USER_FILE, { mode: 0o200 });
    await assert.rejects(mergeIntoUserKubeconfig(kc('a'), { explicit: file }), { message: `cannot read kubeconfig ${file}: EACCES` });
    assert.equal(existsSync(`${file}.lock`), false);
  });

  test("the first existing file of $KUBECONFIG is written; down removes from every file of the list", async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => join(dir, `list-${n}`));
    writeFileSync(b!, USER_FILE, { mode: 0o644 });
    const env = { KUBECONFIG: `${a}:${b}:${c}` };
    assert.equal(await mergeIntoUserKubeconfig(kc('x'), { env, home: dir }), b);
    assert.equal(existsSync(a!), false);
    assert.equal(statSync(b!).mode & 0o777, 0o644, "an existing file keeps its mode, as kind's");
    writeFileSync(c!, mergeKubeconfig('', kc('x')));
    assert.deepEqual(await removeFromUserKubeconfigs(contextName('x'), { env, home: dir }), [b, c]);
    assert.equal(readFileSync(b!, 'utf8').includes('kubewire-x'), false);
    assert.match(readFileSync(b!, 'utf8'), /kind-kind/);
    assert.deepEqual(await removeFromUserKubeconfigs(contextName('x'), { env, home: dir }), [], 'a second down changes nothing');
  });

  test('kubectl reads what was merged', (t) => {
    const kubectl = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
    if (!existsSync(kubectl)) return t.skip(`${kubectl} is not installed`);
    const file = join(dir, 'for-kubectl');
    writeFileSync(file, mergeKubeconfig(USER_FILE, kc('a', 7443)));
    const out = execFileSync(kubectl, ['config', 'view', '--kubeconfig', file, '-o', 'jsonpath={.current-context} {.clusters[?(@.name=="kubewire-a")].cluster.server} {.contexts[*].name}'], { encoding: 'utf8' });
    assert.equal(out, 'kubewire-a https://127.0.0.1:7443 kind-kind kubewire-a');
  });
});
