// kubeconfig files as kind writes them (kind's pkg/cluster/internal/kubeconfig): a cluster, a
// user and a context of one name, merged into the user's file (entries of that name replaced,
// others and comments kept) and made current; removed again by `down`. Pure: text in, text
// out; kubeconfig-files.ts reads, locks and writes.

import { join } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, stringify, type Document, type YAMLMap } from 'yaml';

/** The name of a cluster's context, cluster and user entries (kind's `kind-NAME`). */
export const contextName = (cluster: string): string => `kubewire-${cluster}`;

/** A kubeconfig as kubectl and kind write one (Go's YAML: keys in sorted order). */
export interface Kubeconfig {
  apiVersion: 'v1';
  clusters: { cluster: { 'certificate-authority-data': string; server: string }; name: string }[];
  contexts: { context: { cluster: string; user: string }; name: string }[];
  'current-context': string;
  kind: 'Config';
  preferences: Record<string, never>;
  users: { name: string; user: { 'client-certificate-data': string; 'client-key-data': string } }[];
}

export interface Credentials {
  server: string;
  /** PEM texts: the cluster's CA, the admin's certificate and key. */
  ca: string;
  cert: string;
  key: string;
}

const b64 = (pem: string) => Buffer.from(pem).toString('base64');

/** A cluster's own kubeconfig (what `kubewire kubeconfig` prints, as `kind get kubeconfig`). */
export function kubeconfigFor(cluster: string, c: Credentials): Kubeconfig {
  const name = contextName(cluster);
  return {
    apiVersion: 'v1',
    clusters: [{ cluster: { 'certificate-authority-data': b64(c.ca), server: c.server }, name }],
    contexts: [{ context: { cluster: name, user: name }, name }],
    'current-context': name,
    kind: 'Config',
    preferences: {},
    users: [{ name, user: { 'client-certificate-data': b64(c.cert), 'client-key-data': b64(c.key) } }],
  };
}

/** kubectl's layout: a list's items at their key's indentation, long base64 lines unbroken. */
const STYLE = { lineWidth: 0, indentSeq: false } as const;

export const printKubeconfig = (k: Kubeconfig): string => stringify(k, STYLE);

export class KubeconfigError extends Error {}

const SECTIONS = ['clusters', 'users', 'contexts'] as const;

function parse(text: string, file: string): Document {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new KubeconfigError(`kubeconfig ${file} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  if (doc.contents !== null && !isMap(doc.contents) && !(isScalar(doc.contents) && doc.contents.value === null)) throw new KubeconfigError(`kubeconfig ${file} is not a kubeconfig: its top level is not a mapping`);
  return doc;
}

/** A section's list, made when absent or null (kubectl writes `clusters: null`); refused when it is something else. */
function section(doc: Document, key: string, file: string) {
  const node = doc.get(key, true);
  if (isSeq(node)) return node;
  if (node === undefined || node === null || (isScalar(node) && node.value === null)) {
    const seq = doc.createNode([]);
    doc.set(key, seq);
    return seq;
  }
  throw new KubeconfigError(`kubeconfig ${file}: ${key} is not a list`);
}

const nameOf = (item: unknown): unknown => (isMap(item) ? (item as YAMLMap).get('name') : undefined);

/**
 * `existing` (a file's text, '' for none) with `k`'s entries merged in, as kind merges: an entry
 * of the same name is replaced in place, a new one appended; current-context set to `k`'s.
 */
export function mergeKubeconfig(existing: string, k: Kubeconfig, file = 'kubeconfig'): string {
  const doc = parse(existing, file);
  if (!isMap(doc.contents)) doc.contents = doc.createNode({ apiVersion: 'v1', clusters: [], contexts: [], 'current-context': '', kind: 'Config', preferences: {}, users: [] }) as never;
  // kind sets apiVersion and kind on a file without them: some clients (the JavaScript one) need them.
  if (!doc.has('apiVersion')) doc.set('apiVersion', 'v1');
  if (!doc.has('kind')) doc.set('kind', 'Config');
  for (const key of SECTIONS) {
    const entry = k[key][0]!;
    const seq = section(doc, key, file);
    seq.flow = false; // `clusters: []` (left by a removal) would otherwise take our entry inline
    const i = seq.items.findIndex((item) => nameOf(item) === entry.name);
    const node = doc.createNode(entry);
    if (i >= 0) seq.items[i] = node;
    else seq.items.push(node);
  }
  doc.set('current-context', k['current-context']);
  return doc.toString(STYLE);
}

/**
 * `existing` without the entries named `name`, and with current-context cleared when it named
 * them (kind's remove); undefined when nothing changed, so that the file is left untouched.
 */
export function removeFromKubeconfig(existing: string, name: string, file = 'kubeconfig'): string | undefined {
  const doc = parse(existing, file);
  if (!isMap(doc.contents)) return undefined;
  let changed = false;
  for (const key of SECTIONS) {
    const seq = doc.get(key, true);
    if (!isSeq(seq)) continue;
    const kept = seq.items.filter((item) => nameOf(item) !== name);
    if (kept.length !== seq.items.length) {
      seq.items = kept;
      changed = true;
    }
  }
  if (doc.get('current-context') === name) {
    doc.set('current-context', '');
    changed = true;
  }
  return changed ? doc.toString(STYLE) : undefined;
}

/** The kubeconfig paths, as kubectl reads them: --kubeconfig alone, else $KUBECONFIG's list (empties and repeats dropped), else ~/.kube/config. */
export function kubeconfigPaths(explicit: string | undefined, env: NodeJS.ProcessEnv, home: string): string[] {
  if (explicit) return [explicit];
  const list = [...new Set((env.KUBECONFIG ?? '').split(':').filter(Boolean))];
  return list.length ? list : [join(home, '.kube', 'config')];
}

/** The file `up` writes to (kind's pathForMerge): --kubeconfig, else the first existing file of $KUBECONFIG (its last when none exists), else ~/.kube/config. */
export function kubeconfigTarget(explicit: string | undefined, env: NodeJS.ProcessEnv, home: string, exists: (path: string) => boolean): string {
  const paths = kubeconfigPaths(explicit, env, home);
  return paths.find(exists) ?? paths[paths.length - 1]!;
}

/** The lock a writer of `file` holds (client-go and kind use the same name). */
export const lockPath = (file: string): string => `${file}.lock`;
