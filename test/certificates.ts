// Certificates as users make them, with the openssl command line: a test CA, an intermediate
// it signs, and a leaf per key type signed by the intermediate, with its key file in the
// format a user's tool writes (PKCS#1 from `genrsa -traditional`, SEC1 from `ecparam
// -genkey`, PKCS#8 from `genpkey`). tls.crt is the leaf then the intermediate, as
// cert-manager writes it; curl trusts the CA alone, so it must be sent the whole chain.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type KeyType = 'rsa2048' | 'rsa3072' | 'rsa4096' | 'p256' | 'p384' | 'ed25519' | 'rsa1024';
export type KeyFormat = 'pkcs1' | 'pkcs8' | 'sec1';

const openssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

function generateKey(dir: string, file: string, type: KeyType, format: KeyFormat): void {
  const rsaBits = /^rsa(\d+)$/.exec(type)?.[1];
  if (rsaBits && format === 'pkcs1') openssl(dir, 'genrsa', '-traditional', '-out', file, rsaBits);
  else if (rsaBits) openssl(dir, 'genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${rsaBits}`, '-out', file);
  else if (type === 'ed25519') openssl(dir, 'genpkey', '-algorithm', 'ed25519', '-out', file);
  else {
    const curve = type === 'p256' ? 'prime256v1' : 'secp384r1';
    if (format === 'sec1') openssl(dir, 'ecparam', '-name', curve, '-genkey', '-noout', '-out', file);
    else openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-out', file);
  }
}

export interface TestCa {
  dir: string;
  /** The root's PEM file: what a client is told to trust. */
  caFile: string;
}

/** A root CA and an intermediate under `dir`. */
export function makeCa(dir: string): TestCa {
  const ext = join(dir, 'ca.ext');
  writeFileSync(ext, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/O=kubewire tests/CN=Test Root CA', '-keyout', 'root.key', '-out', 'root.crt');
  openssl(dir, 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/O=kubewire tests/CN=Test Intermediate CA', '-keyout', 'intermediate.key', '-out', 'intermediate.csr');
  openssl(dir, 'x509', '-req', '-in', 'intermediate.csr', '-CA', 'root.crt', '-CAkey', 'root.key', '-set_serial', '2', '-days', '2', '-extfile', ext, '-out', 'intermediate.crt');
  return { dir, caFile: join(dir, 'root.crt') };
}

export interface LeafCertificate {
  /** tls.crt: the leaf, then the intermediate. */
  crt: string;
  key: string;
  leaf: string;
  intermediate: string;
}

let serial = 100;

/** A leaf for `host` with a key of `type` in `format`, signed by the CA's intermediate. */
export function makeLeaf(ca: TestCa, name: string, host: string, type: KeyType, format: KeyFormat = 'pkcs8'): LeafCertificate {
  const { dir } = ca;
  generateKey(dir, `${name}.key`, type, format);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:${host}\nextendedKeyUsage=serverAuth\n`);
  openssl(dir, 'req', '-new', '-key', `${name}.key`, '-subj', `/CN=${host}`, '-out', `${name}.csr`);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'intermediate.crt', '-CAkey', 'intermediate.key', '-set_serial', String(serial++), '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
  const leaf = readFileSync(join(dir, `${name}.crt`), 'utf8');
  const intermediate = readFileSync(join(dir, 'intermediate.crt'), 'utf8');
  return { crt: leaf + intermediate, key: readFileSync(join(dir, `${name}.key`), 'utf8'), leaf, intermediate };
}

/** A kubernetes.io/tls Secret as YAML. */
export function tlsSecretYaml(name: string, crt: string, key: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}}\ntype: kubernetes.io/tls\ndata: {tls.crt: ${b64(crt)}, tls.key: ${b64(key)}}\n`;
}
