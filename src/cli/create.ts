// kubectl create secret tls|generic and create configmap: Secrets and ConfigMaps from files
// and literals, as kubectl makes them
// (a TLS pair is checked before anything is sent, as kubectl does; --dry-run=client -o yaml
// prints the object for a manifest instead of creating it).

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { resourceOfKind } from '../api/resources.ts';
import type { ConfigMap, Secret } from '../api/types.ts';
import { isAlreadyExists } from '../apiserver/status.ts';
import { ClusterError } from '../cluster/cluster.ts';
import { parseKeyPair } from '../ingress/tls.ts';
import { connect, defaultCluster } from './kubectl.ts';
import { printObjects } from './print.ts';

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

function readInput(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ClusterError(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

/** A kubernetes.io/tls Secret from PEM files, refused when the key does not belong to the certificate. */
export function tlsSecret(name: string, namespace: string, cert: Buffer, key: Buffer, files: { cert: string; key: string }): Secret {
  const pair = parseKeyPair(cert.toString('utf8'), key.toString('utf8'));
  if (typeof pair === 'string') throw new ClusterError(`failed to load key pair (--cert ${files.cert}, --key ${files.key}): ${pair}`);
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(cert), 'tls.key': b64(key) } };
}

/** Each key and value of kubectl's --from-literal key=value and --from-file [key=]path flags, with the flag that gave it. */
function forEachSource(literals: string[], files: string[], put: (key: string, value: Buffer | string, from: string) => void): void {
  for (const l of literals) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new ClusterError(`--from-literal ${l}: must be key=value`);
    put(l.slice(0, eq), l.slice(eq + 1), `--from-literal ${l}`);
  }
  for (const f of files) {
    const eq = f.indexOf('=');
    const [key, path] = eq > 0 ? [f.slice(0, eq), f.slice(eq + 1)] : [basename(f), f];
    put(key, readInput(path, '--from-file'), `--from-file ${f}`);
  }
}

/** An Opaque (or --type) Secret from key=value literals and [key=]path files. */
export function genericSecret(name: string, namespace: string, type: string, literals: string[], files: string[]): Secret {
  const data: Record<string, string> = {};
  const put = (key: string, value: Buffer | string, from: string) => {
    if (!/^[-._a-zA-Z0-9]+$/.test(key)) throw new ClusterError(`${from}: "${key}" is not a valid key name for a Secret (letters, digits, '-', '_', '.')`);
    if (key in data) throw new ClusterError(`${from}: cannot add key ${key}, another key by that name already exists`);
    data[key] = b64(value);
  };
  forEachSource(literals, files, put);
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type, data };
}

/** A ConfigMap from key=value literals and [key=]path files (text in data, anything else base64 in binaryData, as kubectl sorts them). */
export function configMapOf(name: string, namespace: string, literals: string[], files: string[]): ConfigMap {
  const data: Record<string, string> = {};
  const binaryData: Record<string, string> = {};
  const put = (key: string, value: Buffer | string, from: string) => {
    if (!/^[-._a-zA-Z0-9]+$/.test(key)) throw new ClusterError(`${from}: "${key}" is not a valid key name for a ConfigMap (letters, digits, '-', '_', '.')`);
    if (key in data || key in binaryData) throw new ClusterError(`${from}: cannot add key ${key}, another key by that name already exists`);
    const text = Buffer.from(value).toString('utf8');
    if (Buffer.from(text, 'utf8').equals(Buffer.from(value))) data[key] = text;
    else binaryData[key] = b64(value);
  };
  forEachSource(literals, files, put);
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data, ...(Object.keys(binaryData).length ? { binaryData } : {}) };
}

async function create(o: { cluster: string; dryRun?: string; output?: string }, secret: Secret | ConfigMap): Promise<void> {
  if (o.dryRun !== undefined && o.dryRun !== 'client' && o.dryRun !== 'server' && o.dryRun !== 'none') throw new ClusterError(`--dry-run ${o.dryRun}: must be none, client or server`);
  const dryRun = o.dryRun === 'client' || o.dryRun === 'server';
  if (o.dryRun !== 'client') {
    const { client } = connect(o.cluster);
    const rt = resourceOfKind(secret.kind);
    try {
      if (o.dryRun === 'server') await client.call('POST', `/api/v1/namespaces/${secret.metadata.namespace}/${rt.plural}?dryRun=All`, secret);
      else await client.create(rt, secret);
    } catch (e) {
      if (isAlreadyExists(e)) throw new ClusterError(`failed to create ${rt.singular} ${rt.plural} "${secret.metadata.name}" already exists`);
      throw e;
    }
  }
  const singular = resourceOfKind(secret.kind).singular;
  if (o.output === 'yaml' || o.output === 'json') return void process.stdout.write(`${printObjects([secret], o.output, true, resourceOfKind(secret.kind))}\n`);
  if (o.output && o.output !== 'name') throw new ClusterError(`-o ${o.output}: must be yaml, json or name`);
  process.stdout.write(o.output === 'name' ? `${singular}/${secret.metadata.name}\n` : `${singular}/${secret.metadata.name} created${dryRun ? ` (${o.dryRun} dry run)` : ''}\n`);
}

export function registerCreateCommands(program: Command): void {
  const createCmd = program.command('create').description('create an object from the command line (kubectl create secret tls|generic, create configmap)');
  const secret = createCmd.command('secret').description('create a Secret');
  const common = (c: Command) =>
    c
      .option('-n, --namespace <ns>', 'namespace', 'default')
      .option('--cluster <name>', 'cluster name (or KUBEWIRE_CLUSTER)', defaultCluster())
      .option('--dry-run <mode>', 'client: print the object only; server: have the API check it; none')
      .option('-o, --output <format>', 'yaml | json | name');
  common(secret.command('tls'))
    .description('a kubernetes.io/tls Secret from a certificate (chain, leaf first) and its key, as an Ingress names it')
    .argument('<name>')
    .requiredOption('--cert <file>', 'PEM certificate file (the leaf, then its intermediates)')
    .requiredOption('--key <file>', 'PEM private key file (PKCS#1, PKCS#8 or SEC1)')
    .action(async (name: string, o: { namespace: string; cluster: string; cert: string; key: string; dryRun?: string; output?: string }) => {
      await create(o, tlsSecret(name, o.namespace, readInput(o.cert, '--cert'), readInput(o.key, '--key'), o));
    });
  common(secret.command('generic'))
    .description('an Opaque Secret (or --type) from literals and files')
    .argument('<name>')
    .option('--from-literal <key=value...>', 'a key and its value (repeatable)', [])
    .option('--from-file <[key=]path...>', 'a file, under its name or KEY (repeatable)', [])
    .option('--type <type>', 'the Secret type', 'Opaque')
    .action(async (name: string, o: { namespace: string; cluster: string; fromLiteral: string[]; fromFile: string[]; type: string; dryRun?: string; output?: string }) => {
      await create(o, genericSecret(name, o.namespace, o.type, o.fromLiteral, o.fromFile));
    });
  common(createCmd.command('configmap').alias('cm'))
    .description('a ConfigMap from literals and files')
    .argument('<name>')
    .option('--from-literal <key=value...>', 'a key and its value (repeatable)', [])
    .option('--from-file <[key=]path...>', 'a file, under its name or KEY (repeatable)', [])
    .action(async (name: string, o: { namespace: string; cluster: string; fromLiteral: string[]; fromFile: string[]; dryRun?: string; output?: string }) => {
      await create(o, configMapOf(name, o.namespace, o.fromLiteral, o.fromFile));
    });
}
