// TLS for the ingress: the kubernetes.io/tls Secrets that served Ingresses name, checked
// (both PEMs present and parseable, the key belonging to the first certificate, the chain in
// order) and tried in a real handshake, in memory: a certificate no client could be served
// with is reported and its hosts get the default certificate, as with any other unusable
// Secret. Problems are reported against every Ingress naming the Secret. The certificates
// are served by SNI (terminate.ts).

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, createSecureContext, TLSSocket, type SecureContext, type SecureVersion } from 'node:tls';
import { namespacedName, type Ingress, type Secret } from '../api/types.ts';
import { hostMatches } from './paths.ts';
import type { Problem } from './table.ts';
import { MIN_TLS_VERSION, type KeyPair } from './terminate.ts';

export interface Certificate {
  /** What is served: the chain as given (leaf first) and the key. */
  keyPair: KeyPair;
  /** DNS names the certificate covers (subjectAltName, else CN). */
  names: string[];
  notAfter: Date;
  /** Served, but worth telling the user (a chain out of order, a short key, a TLS version it fails). */
  warnings: string[];
}

const why = (e: unknown) => (e instanceof Error ? ((e as { reason?: string }).reason ?? e.message) : String(e));
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const ordinal = (i: number) => ['first', 'second', 'third'][i] ?? `${i + 1}th`;

interface ParsedKeyPair {
  chain: X509Certificate[];
  key: KeyObject;
  warnings: string[];
}

/** The certificates of tls.crt (leaf first) and the key of tls.key, or what is wrong with them. */
export function parseKeyPair(crt: string, keyPem: string): ParsedKeyPair | string {
  const blocks = crt.match(PEM_CERTIFICATE) ?? [];
  if (!blocks.length) return 'tls.crt is not a PEM certificate (no BEGIN CERTIFICATE block)';
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch (e) {
    return `tls.crt is not a PEM certificate (${why(e)})`;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    if (/ENCRYPTED PRIVATE KEY|Proc-Type: 4,ENCRYPTED/.test(keyPem)) return 'tls.key is encrypted: the controller needs it without a passphrase';
    return `tls.key is not a PEM private key (PKCS#1, PKCS#8 or SEC1) (${why(e)})`;
  }
  if (!chain[0]!.checkPrivateKey(key)) {
    const owner = chain.findIndex((c) => c.checkPrivateKey(key));
    return owner > 0
      ? `tls.key belongs to the ${ordinal(owner)} certificate of tls.crt: the certificate of the key (the leaf) must come first, then its issuers`
      : 'tls.key does not belong to tls.crt';
  }
  const warnings: string[] = [];
  const bits = key.asymmetricKeyType?.startsWith('rsa') ? key.asymmetricKeyDetails?.modulusLength : undefined;
  if (bits && bits < 2048) warnings.push(`the RSA key has ${bits} bits: clients at OpenSSL's security level 2 (Debian's curl, browsers) refuse keys under 2048`);
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!)) {
      warnings.push(`the ${ordinal(i + 1)} certificate of tls.crt (${chain[i + 1]!.subject.replace(/\n/g, ', ')}) did not issue the ${ordinal(i)}: clients may not build the chain (it is served in the order given, leaf first, then each issuer)`);
      break;
    }
  }
  return { chain, key, warnings };
}

/**
 * A certificate and key (PEM) checked and tried, or what is wrong with them. The handshake is
 * tried as TLS 1.3 clients make it, and as TLS 1.2 clients only when that fails (what passes
 * 1.3 with OpenSSL's signature algorithms passes 1.2 too): about 8 ms for an RSA 2048 key.
 */
export async function loadCertificate(crt: string, keyPem: string): Promise<Certificate | string> {
  const pair = parseKeyPair(crt, keyPem);
  if (typeof pair === 'string') return pair;
  const keyPair = { cert: pair.chain.map((c) => c.toString()).join(''), key: keyPem };
  let context: SecureContext;
  try {
    context = createSecureContext({ ...keyPair, minVersion: MIN_TLS_VERSION });
  } catch (e) {
    return `the certificate and key cannot be loaded for TLS (${why(e)})`;
  }
  const leaf = pair.chain[0]!;
  const warnings = pair.warnings;
  const failed13 = await tryHandshake(context, leaf, 'TLSv1.3');
  if (failed13) {
    const failed12 = await tryHandshake(context, leaf, 'TLSv1.2');
    if (failed12) return `the certificate cannot be used for a TLS handshake (TLS 1.3 clients: ${failed13}; TLS 1.2 clients: ${failed12})`;
    warnings.push(`the certificate fails the handshake of TLS 1.3 clients (${failed13}); TLS 1.2 clients are served`);
  }
  const sans = (leaf.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase());
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(leaf.subject)?.[1]?.toLowerCase();
  return { keyPair, names: sans.length ? sans : cn ? [cn] : [], notAfter: new Date(leaf.validTo), warnings };
}

/** Two Duplex streams joined back to back: what one writes, the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const end = (i: number) =>
    new Duplex({
      read() {},
      write(chunk, _encoding, done) {
        ends[1 - i]!.push(chunk);
        done();
      },
      final(done) {
        ends[1 - i]!.push(null);
        done();
      },
    });
  ends.push(end(0), end(1));
  return [ends[0]!, ends[1]!];
}

/**
 * A handshake in memory: the certificate's context as the ingress serves it, against a
 * client of `version` with OpenSSL's default ciphers and signature algorithms at security
 * level 2 (Debian's default, close to browsers'). Resolves to why it failed, if it did.
 */
function tryHandshake(context: SecureContext, leaf: X509Certificate, version: SecureVersion): Promise<string | undefined> {
  const [serverEnd, clientEnd] = duplexPair();
  const server = new TLSSocket(serverEnd, { isServer: true, secureContext: context });
  const client = tlsConnect({ socket: clientEnd, rejectUnauthorized: false, minVersion: version, maxVersion: version, ciphers: 'DEFAULT:@SECLEVEL=2', servername: 'probe.invalid' });
  return new Promise((resolve) => {
    let serverError: string | undefined;
    const done = (failure: string | undefined) => {
      clearTimeout(timer);
      client.destroy();
      server.destroy();
      resolve(failure);
    };
    const timer = setTimeout(() => done('the handshake did not finish within 5 s'), 5_000);
    server.on('error', (e) => (serverError ??= why(e)));
    client.on('error', (e) => setImmediate(() => done(serverError ?? why(e))));
    client.once('secureConnect', () => {
      const served = client.getPeerX509Certificate();
      done(served?.fingerprint256 === leaf.fingerprint256 ? undefined : `another certificate was served (${served?.subject.replace(/\n/g, ', ') ?? 'none'})`);
    });
  });
}

/** Whether a certificate name (maybe `*.x`) covers a host (maybe `*.x` itself). */
function covers(names: string[], host: string): boolean {
  return names.some((n) => n === host || (n.startsWith('*.') && !host.startsWith('*.') && hostMatches(n, host)));
}

export interface TlsState {
  certificates: Map<string, Certificate>;
  problems: Problem[];
}

/** The content of a Secret that its certificate depends on: equal contents share one check. */
const contentKey = (secret: Secret) => `${secret.data?.['tls.crt'] ?? ''}\0${secret.data?.['tls.key'] ?? ''}`;
const decode = (b64: string | undefined) => (b64 === undefined ? '' : Buffer.from(b64, 'base64').toString('utf8'));

/** What is wrong with a Secret before its certificate is read, if anything. */
function secretProblem(name: string, secret: Secret | undefined): string | undefined {
  if (!secret) return `secret ${name} not found`;
  if (secret.type !== 'kubernetes.io/tls') return `secret ${name} is of type ${JSON.stringify(secret.type)}, not kubernetes.io/tls`;
  for (const field of ['tls.crt', 'tls.key']) if (!secret.data?.[field]) return `secret ${name} has no ${field}`;
  return undefined;
}

/**
 * The certificates of the Secrets that `ingresses` name, and a problem per unusable one or
 * uncovered host. `cache` (by the Secrets' certificate and key) spares re-checking a content
 * already checked: an unchanged Secret, or one certificate copied into many Secrets.
 */
export async function loadTls(ingresses: Ingress[], secrets: Secret[], cache = new Map<string, Promise<Certificate | string>>()): Promise<TlsState> {
  const byName = new Map(secrets.map((s) => [namespacedName(s), s]));
  const certificates = new Map<string, Certificate>();
  const failed = new Map<string, string>();
  const problems: Problem[] = [];
  const used = new Set<string>();
  for (const ing of ingresses) {
    const ref = { namespace: ing.metadata.namespace!, name: ing.metadata.name, uid: ing.metadata.uid };
    for (const t of ing.spec.tls ?? []) {
      if (!t.secretName) continue;
      const name = `${ref.namespace}/${t.secretName}`;
      if (!certificates.has(name) && !failed.has(name)) {
        const secret = byName.get(name);
        const problem = secretProblem(name, secret);
        if (problem) failed.set(name, problem);
        else {
          const key = contentKey(secret!);
          used.add(key);
          let loading = cache.get(key);
          if (!loading) cache.set(key, (loading = loadCertificate(decode(secret!.data!['tls.crt']), decode(secret!.data!['tls.key']))));
          const loaded = await loading;
          if (typeof loaded === 'string') failed.set(name, `secret ${name}: ${loaded}`);
          else certificates.set(name, loaded);
        }
      }
      const failure = failed.get(name);
      if (failure) {
        problems.push({ ingress: ref, reason: 'BadTLSSecret', message: `spec.tls: ${failure}: hosts ${(t.hosts ?? []).join(', ') || '(none)'} get the default certificate` });
        continue;
      }
      const cert = certificates.get(name)!;
      for (const w of cert.warnings) problems.push({ ingress: ref, reason: 'TLSCertificateWarning', message: `spec.tls: secret ${name}: ${w}` });
      for (const h of t.hosts ?? []) {
        if (!covers(cert.names, h)) problems.push({ ingress: ref, reason: 'TLSHostMismatch', message: `spec.tls: the certificate in secret ${name} is for ${cert.names.join(', ') || 'no DNS name'}, not ${h}: clients will not trust it for ${h}` });
      }
    }
  }
  for (const k of cache.keys()) if (!used.has(k)) cache.delete(k);
  return { certificates, problems };
}
