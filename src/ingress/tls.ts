// TLS for the ingress: the kubernetes.io/tls Secrets that served Ingresses name, checked
// (both PEMs present and parseable, the key matching the certificate) and turned into
// secure contexts chosen by SNI. A bad Secret is reported against every Ingress naming it;
// its hosts get the default certificate.

import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { namespacedName, type Ingress, type Secret } from '../api/types.ts';
import { hostMatches } from './paths.ts';
import type { Problem } from './routes.ts';

export interface Certificate {
  secret: string;
  context: SecureContext;
  /** DNS names the certificate covers (subjectAltName, else CN). */
  names: string[];
  notAfter: Date;
}

function decode(secret: Secret, field: string): string | undefined {
  const v = secret.data?.[field];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}

/** A Secret as a certificate, or what is wrong with it. */
export function loadCertificate(secret: Secret): Certificate | string {
  const name = namespacedName(secret);
  if (secret.type !== 'kubernetes.io/tls') return `secret ${name} is of type ${JSON.stringify(secret.type)}, not kubernetes.io/tls`;
  const crt = decode(secret, 'tls.crt');
  const key = decode(secret, 'tls.key');
  if (!crt || !key) return `secret ${name} has no ${!crt ? 'tls.crt' : 'tls.key'}`;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(crt);
  } catch (e) {
    return `secret ${name}: tls.crt is not a PEM certificate (${e instanceof Error ? e.message : String(e)})`;
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert: crt, key });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return `secret ${name}: ${/mismatch/i.test(msg) ? 'tls.key does not belong to tls.crt' : `tls.key is not a usable private key (${msg})`}`;
  }
  const sans = (cert.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase());
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1]?.toLowerCase();
  return { secret: name, context, names: sans.length ? sans : cn ? [cn] : [], notAfter: new Date(cert.validTo) };
}

/** Whether a certificate name (maybe `*.x`) covers a host (maybe `*.x` itself). */
function covers(names: string[], host: string): boolean {
  return names.some((n) => n === host || (n.startsWith('*.') && !host.startsWith('*.') && hostMatches(n, host)));
}

export interface TlsState {
  certificates: Map<string, Certificate>;
  problems: Problem[];
}

/**
 * The certificates of the Secrets that `ingresses` name, and a problem per unusable one or
 * uncovered host. `cache` (by name and resourceVersion) spares re-parsing unchanged Secrets.
 */
export function loadTls(ingresses: Ingress[], secrets: Secret[], cache = new Map<string, Certificate | string>()): TlsState {
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
        const version = `${name}@${secret?.metadata.resourceVersion}`;
        used.add(version);
        let loaded = secret ? cache.get(version) : `secret ${name} not found`;
        if (loaded === undefined) cache.set(version, (loaded = loadCertificate(secret!)));
        if (typeof loaded === 'string') failed.set(name, loaded);
        else certificates.set(name, loaded);
      }
      const why = failed.get(name);
      if (why) {
        problems.push({ ingress: ref, reason: 'BadTLSSecret', message: `spec.tls: ${why}: hosts ${(t.hosts ?? []).join(', ') || '(none)'} get the default certificate` });
        continue;
      }
      const cert = certificates.get(name)!;
      for (const h of t.hosts ?? []) {
        if (!covers(cert.names, h)) problems.push({ ingress: ref, reason: 'TLSHostMismatch', message: `spec.tls: the certificate in secret ${name} is for ${cert.names.join(', ') || 'no DNS name'}, not ${h}: clients will not trust it for ${h}` });
      }
    }
  }
  for (const k of cache.keys()) if (!used.has(k)) cache.delete(k);
  return { certificates, problems };
}
