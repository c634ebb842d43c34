// A cluster's PKI, as kubeadm lays it out under /etc/kubernetes/pki: a CA, the API server's
// serving certificate and the admin's client certificate (kind's kubeconfig embeds the CA and
// the admin's pair). Made once per cluster, at `up`; a restarted daemon serves the same ones.
//
// Keys are ECDSA P-256, which kubeadm offers too (ClusterConfiguration encryptionAlgorithm
// ECDSA-P256, v1.31): three RSA-2048 keys took 1.1 s here, more than a whole `up` of a
// 1-node cluster (0.7 s); three P-256 keys take 1 ms, and kubectl (Go's crypto/tls) takes both.

import { createPrivateKey, webcrypto } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';
import { addToIP, firstIP, formatIP, tryParsePrefix } from '../netaddr/ip.ts';
import { writeFileAtomically } from '../state/files.ts';

/** kubeadm's file names. */
export const PKI = {
  dir: 'pki',
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'apiserver.crt',
  serverKey: 'apiserver.key',
  adminCert: 'admin.crt',
  adminKey: 'admin.key',
} as const;

/** The admin's identity: kubeadm ≥1.29's admin.conf user, bound to cluster-admin (KEP-4214). */
export const ADMIN = { commonName: 'kubernetes-admin', organization: 'kubeadm:cluster-admins' };

/** Groups whose members have every right: kubeadm's admins and the older system:masters (super-admin.conf). */
export const ADMIN_GROUPS = ['kubeadm:cluster-admins', 'system:masters'];

/** One PEM pair. */
export interface KeyPair {
  cert: string;
  key: string;
}

export interface ClusterPki {
  ca: KeyPair;
  server: KeyPair;
  admin: KeyPair;
}

export interface ServerNames {
  dns: string[];
  ips: string[];
}

/**
 * The API server certificate's names (pure), kubeadm's set: localhost and the loopback
 * addresses (kubectl reaches it at 127.0.0.1), the `kubernetes` Service's names in the cluster's
 * domain, and that Service's ClusterIP (the service range's first address, as kubeadm takes it).
 */
export function serverNames(spec: { serviceCIDR?: string; clusterDomain?: string }): ServerNames {
  const domain = spec.clusterDomain ?? 'cluster.local';
  const ips = ['127.0.0.1', '::1'];
  const range = spec.serviceCIDR ? tryParsePrefix(spec.serviceCIDR) : undefined;
  if (range) ips.push(formatIP(addToIP(firstIP(range), 1n)));
  return { dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', `kubernetes.default.svc.${domain}`], ips };
}

const subtle = webcrypto.subtle;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

/** A positive 128-bit serial number (RFC 5280: at most 20 octets, unpredictable). */
function serial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0]! &= 0x7f;
  return Buffer.from(b).toString('hex');
}

/** A private key as kubeadm writes an EC one: SEC1 PEM ("EC PRIVATE KEY"). */
async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'sec1', format: 'pem' }) as string;
}

const newKeys = () => subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;

/** Makes a cluster's CA, server and admin certificates (CA 10 years, leaves 1 year, as kubeadm). */
export async function createPki(names: ServerNames, now = new Date()): Promise<ClusterPki> {
  // Loaded here only: `up` alone makes certificates, other commands start without x509's code.
  // @peculiar/x509 2.x needs a Reflect metadata polyfill loaded first.
  await import('reflect-metadata');
  const mod = (await import('@peculiar/x509')) as typeof X509 & { default?: typeof X509 };
  const x509 = mod.default ?? mod; // the bundle (esbuild) gives its CommonJS build as a default export only
  // Valid from a minute ago: a clock a little behind on the client side still accepts them.
  const notBefore = new Date(now.getTime() - 60_000);
  const [caKeys, serverKeys, adminKeys] = await Promise.all([newKeys(), newKeys(), newKeys()]);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=kubernetes',
    notBefore,
    notAfter: new Date(now.getTime() + 3650 * DAY),
    signingAlgorithm: SIGNING,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = async (subject: string, keys: webcrypto.CryptoKeyPair, usage: string, extra: X509.Extension[]) =>
    x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer: ca.subject,
      notBefore,
      notAfter: new Date(now.getTime() + 365 * DAY),
      signingAlgorithm: SIGNING,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([usage]),
        await x509.AuthorityKeyIdentifierExtension.create(ca),
        ...extra,
      ],
    });
  const server = await leaf('CN=kube-apiserver', serverKeys, x509.ExtendedKeyUsage.serverAuth, [
    new x509.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]),
  ]);
  const admin = await leaf(`O=${ADMIN.organization}, CN=${ADMIN.commonName}`, adminKeys, x509.ExtendedKeyUsage.clientAuth, []);
  return {
    ca: { cert: ca.toString('pem'), key: await keyPem(caKeys.privateKey) },
    server: { cert: server.toString('pem'), key: await keyPem(serverKeys.privateKey) },
    admin: { cert: admin.toString('pem'), key: await keyPem(adminKeys.privateKey) },
  };
}

// Files: the cluster directory's pki/, certificates 0644 and keys 0600 as kubeadm writes them.

export const pkiDir = (clusterDir: string): string => join(clusterDir, PKI.dir);

/** The cluster's PKI, made if absent (created says whether it was); a cluster's is never replaced. */
export async function ensurePki(clusterDir: string, names: ServerNames): Promise<{ created: boolean }> {
  const dir = pkiDir(clusterDir);
  if (existsSync(join(dir, PKI.caCert)) && existsSync(join(dir, PKI.adminKey))) return { created: false };
  const pki = await createPki(names);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: [string, string, number][] = [
    [PKI.caCert, pki.ca.cert, 0o644],
    [PKI.caKey, pki.ca.key, 0o600],
    [PKI.serverCert, pki.server.cert, 0o644],
    [PKI.serverKey, pki.server.key, 0o600],
    [PKI.adminCert, pki.admin.cert, 0o644],
    [PKI.adminKey, pki.admin.key, 0o600], // last: its presence says the set is whole
  ];
  for (const [file, text, mode] of files) writeFileAtomically(join(dir, file), text, mode);
  return { created: true };
}

/** What the API server serves with: its pair, and the CA that client certificates must chain to. */
export interface ServingPki {
  ca: string;
  cert: string;
  key: string;
}

export class PkiError extends Error {}

function readPem(dir: string, file: string): string {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch (e) {
    throw new PkiError(`cannot read the cluster's ${file} (${join(dir, file)}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function readServingPki(clusterDir: string): ServingPki {
  const dir = pkiDir(clusterDir);
  return { ca: readPem(dir, PKI.caCert), cert: readPem(dir, PKI.serverCert), key: readPem(dir, PKI.serverKey) };
}

/** What a kubeconfig embeds: the CA and the admin's pair. */
export function readAdminPki(clusterDir: string): { ca: string; cert: string; key: string } {
  const dir = pkiDir(clusterDir);
  return { ca: readPem(dir, PKI.caCert), cert: readPem(dir, PKI.adminCert), key: readPem(dir, PKI.adminKey) };
}

/** Copies what the API server needs (never the CA's key) into another cluster directory: the guest's, in a kernel of its own. */
export function copyServingPki(fromClusterDir: string, toClusterDir: string): void {
  const from = pkiDir(fromClusterDir);
  const to = pkiDir(toClusterDir);
  mkdirSync(to, { recursive: true, mode: 0o700 });
  for (const file of [PKI.caCert, PKI.serverCert, PKI.serverKey]) {
    readPem(from, file); // one clear error when it is missing
    copyFileSync(join(from, file), join(to, file));
  }
}
