// How a program outside the API server finds it: a kubeconfig, read as client-go's clientcmd
// reads one (the files of --kubeconfig, else $KUBECONFIG's list merged first-wins, else
// ~/.kube/config; the current context or --context; paths relative to the file that names
// them), or, with no kubeconfig at all, the in-cluster service account (rest.InClusterConfig).
// Everything is checked here, so that a bad file is one clear line before any connection.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { KubeconfigError, kubeconfigPaths } from '../identity/kubeconfig.ts';

export { KubeconfigError };

/** What a client needs to reach and authenticate to one API server (client-go's rest.Config). */
export interface RestConfig {
  /** https://host:port (or http://), without a trailing slash. */
  server: string;
  /** PEM: the CA that signs the server's certificate; undefined: the system's roots. */
  ca?: string;
  /** PEM: the client certificate and its key. */
  cert?: string;
  key?: string;
  token?: string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  /** Where this came from, for messages: `kubeconfig FILE, context NAME` or `in-cluster config`. */
  source: string;
}

export interface LoadOptions {
  /** --kubeconfig */
  kubeconfig?: string;
  /** --context */
  context?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
}

interface FileConfig {
  file: string;
  doc: Record<string, unknown>;
}

const IN_CLUSTER = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The client config of `o` (kubeconfig or in-cluster); throws a KubeconfigError naming the file and field. */
export function loadRestConfig(o: LoadOptions = {}): RestConfig {
  const env = o.env ?? process.env;
  const paths = kubeconfigPaths(o.kubeconfig, env, o.home ?? homedir());
  const files = o.kubeconfig ? paths : paths.filter((p) => existsSync(p));
  // kube-proxy's fallback (cmd/kube-proxy/app/server.go): no kubeconfig at all -> the Pod's service account.
  if (!files.length && env.KUBERNETES_SERVICE_HOST) return inCluster(env);
  if (!files.length) throw new KubeconfigError(`no kubeconfig: ${paths.join(':')} does not exist and this is not a Pod (no KUBERNETES_SERVICE_HOST); give --kubeconfig FILE (kubewire kubeconfig --cluster NAME prints one)`);
  return fromFiles(files.map(readConfig), o.context);
}

function readConfig(file: string): FileConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KubeconfigError(`kubeconfig ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new KubeconfigError(`kubeconfig ${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new KubeconfigError(`kubeconfig ${file} is not a kubeconfig: its top level is not a mapping`);
  return { file, doc: doc as Record<string, unknown> };
}

/** An entry of a section, first file first (clientcmd's merge: the first file to name an entry wins). */
function entry(files: FileConfig[], section: 'clusters' | 'users' | 'contexts', name: string): { file: string; value: Record<string, unknown> } | undefined {
  const key = section.slice(0, -1);
  for (const { file, doc } of files) {
    const list = doc[section];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) throw new KubeconfigError(`kubeconfig ${file}: ${section} is not a list`);
    const hit = (list as Array<Record<string, unknown> | null>).find((e) => e && e.name === name);
    if (hit) {
      const value = hit[key];
      if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) throw new KubeconfigError(`kubeconfig ${file}: ${section} entry ${JSON.stringify(name)} has no ${key} mapping`);
      return { file, value: (value ?? {}) as Record<string, unknown> };
    }
  }
  return undefined;
}

function fromFiles(files: FileConfig[], wanted: string | undefined): RestConfig {
  const where = files.map((f) => f.file).join(':');
  const current = files.map((f) => f.doc['current-context']).find((c) => typeof c === 'string' && c !== '') as string | undefined;
  const contextName = wanted ?? current;
  if (!contextName) throw new KubeconfigError(`kubeconfig ${where}: no current-context; give --context NAME`);
  const ctx = entry(files, 'contexts', contextName);
  if (!ctx) throw new KubeconfigError(`kubeconfig ${where}: context ${JSON.stringify(contextName)} does not exist`);
  const clusterName = str(ctx.value.cluster, ctx.file, `context ${contextName}: cluster`);
  if (!clusterName) throw new KubeconfigError(`kubeconfig ${ctx.file}: context ${JSON.stringify(contextName)} names no cluster`);
  const cluster = entry(files, 'clusters', clusterName);
  if (!cluster) throw new KubeconfigError(`kubeconfig ${where}: context ${JSON.stringify(contextName)} names cluster ${JSON.stringify(clusterName)}, which does not exist`);
  const userName = str(ctx.value.user, ctx.file, `context ${contextName}: user`);
  const user = userName ? entry(files, 'users', userName) : undefined;
  if (userName && !user) throw new KubeconfigError(`kubeconfig ${where}: context ${JSON.stringify(contextName)} names user ${JSON.stringify(userName)}, which does not exist`);
  const source = `kubeconfig ${ctx.file}, context ${contextName}`;

  const c = cluster.value;
  const cfile = cluster.file;
  const server = str(c.server, cfile, `cluster ${clusterName}: server`);
  if (!server) throw new KubeconfigError(`kubeconfig ${cfile}: cluster ${JSON.stringify(clusterName)} has no server`);
  const out: RestConfig = { server: checkServer(server, `kubeconfig ${cfile}: cluster ${JSON.stringify(clusterName)}: server`), source };
  out.ca = pem(c, 'certificate-authority', cfile, `cluster ${clusterName}`);
  if (c['insecure-skip-tls-verify'] === true) out.insecureSkipTLSVerify = true;
  const sni = str(c['tls-server-name'], cfile, `cluster ${clusterName}: tls-server-name`);
  if (sni) out.tlsServerName = sni;
  if (out.ca) certificate(out.ca, `kubeconfig ${cfile}: cluster ${JSON.stringify(clusterName)}: certificate-authority`);

  if (user) {
    const u = user.value;
    const ufile = user.file;
    const what = `user ${userName}`;
    for (const unsupported of ['exec', 'auth-provider', 'username'] as const) {
      if (u[unsupported] !== undefined) throw new KubeconfigError(`kubeconfig ${ufile}: ${what}: ${unsupported} credentials are not supported here; use a client certificate or a token`);
    }
    out.cert = pem(u, 'client-certificate', ufile, what);
    out.key = pem(u, 'client-key', ufile, what);
    if (!!out.cert !== !!out.key) throw new KubeconfigError(`kubeconfig ${ufile}: ${what} has a client-${out.cert ? 'certificate' : 'key'} but no client-${out.cert ? 'key' : 'certificate'}`);
    if (out.cert && out.key) keyPair(out.cert, out.key, `kubeconfig ${ufile}: ${what}`);
    const token = str(u.token, ufile, `${what}: token`);
    const tokenFile = str(u.tokenFile, ufile, `${what}: tokenFile`);
    if (token) out.token = token;
    else if (tokenFile) out.token = readText(resolvePath(tokenFile, ufile), `kubeconfig ${ufile}: ${what}: tokenFile`).trim();
  }
  return out;
}

function inCluster(env: NodeJS.ProcessEnv): RestConfig {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT || '443';
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const ca = readText(join(IN_CLUSTER, 'ca.crt'), 'in-cluster config: the service account CA');
  certificate(ca, 'in-cluster config: the service account CA');
  return { server, ca, token: readText(join(IN_CLUSTER, 'token'), 'in-cluster config: the service account token').trim(), source: 'in-cluster config' };
}

function str(v: unknown, file: string, field: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new KubeconfigError(`kubeconfig ${file}: ${field} is not a string`);
  return v;
}

function checkServer(server: string, what: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeconfigError(`${what} ${JSON.stringify(server)} is not a URL such as https://127.0.0.1:6443`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new KubeconfigError(`${what} ${JSON.stringify(server)}: only https:// (or http://) servers are reached, not ${url.protocol}`);
  return server.replace(/\/+$/, '');
}

const resolvePath = (p: string, file: string) => (isAbsolute(p) ? p : join(dirname(file), p));

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new KubeconfigError(`${what} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
}

/** `FIELD-data` (base64 PEM) or `FIELD` (a file's path, relative to the kubeconfig). */
function pem(m: Record<string, unknown>, field: string, file: string, what: string): string | undefined {
  const data = str(m[`${field}-data`], file, `${what}: ${field}-data`);
  if (data) {
    const text = Buffer.from(data, 'base64').toString('utf8');
    if (!text.includes('-----BEGIN')) throw new KubeconfigError(`kubeconfig ${file}: ${what}: ${field}-data is not base64 of a PEM block`);
    return text;
  }
  const path = str(m[field], file, `${what}: ${field}`);
  return path ? readText(resolvePath(path, file), `kubeconfig ${file}: ${what}: ${field}`) : undefined;
}

function certificate(text: string, what: string): X509Certificate {
  try {
    return new X509Certificate(text);
  } catch (e) {
    throw new KubeconfigError(`${what} is not a PEM certificate (${(e as Error).message})`);
  }
}

function keyPair(cert: string, key: string, what: string): void {
  const x = certificate(cert, `${what}: client-certificate`);
  let k;
  try {
    k = createPrivateKey(key);
  } catch (e) {
    throw new KubeconfigError(`${what}: client-key is not a PEM private key (${(e as Error).message})`);
  }
  if (!x.checkPrivateKey(k)) throw new KubeconfigError(`${what}: client-key is not the key of client-certificate (${x.subject.replace(/\n/g, ', ')})`);
}
