// Basic authentication, as ingress-nginx's `auth-type: basic`: the users and password hashes
// come from a Secret (`auth-secret`), either an htpasswd file under the key `auth`
// (`auth-secret-type: auth-file`, the default) or one key per user (`auth-map`). A request
// without valid credentials gets 401 and a `WWW-Authenticate: Basic realm=...` challenge.
// Hashes as `htpasswd` and `openssl passwd` make them: bcrypt ($2y$, $2b$, $2a$), Apache MD5
// ($apr1$), MD5-crypt ($1$), {SHA}, {PLAIN}. bcryptjs checks bcrypt; it is slow by design,
// so checks that succeeded are remembered (by hash and a digest of the password).

import bcrypt from 'bcryptjs';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Ingress, Secret } from '../api/types.ts';
import { ANNOTATION_PREFIX } from './annotation-values.ts';

export interface BasicAuth {
  realm: string;
  /** user -> password hash. */
  users: Map<string, string>;
}

/** The basic-auth settings of an Ingress, with its users read from the Secret; `denied` when they cannot be (ingress-nginx answers 503 then). */
export function basicAuthOf(ing: Ingress, secrets: ReadonlyMap<string, Secret>, problem: (reason: string, message: string) => void): { auth?: BasicAuth; denied?: string } {
  const a = (k: string) => ing.metadata.annotations?.[ANNOTATION_PREFIX + k];
  const type = a('auth-type');
  if (type === undefined) return {};
  const deny = (why: string) => {
    const denied = `annotation ${ANNOTATION_PREFIX}${why}: every request is answered 503`;
    problem('InvalidAnnotation', denied);
    return { denied };
  };
  if (type !== 'basic') return deny(`auth-type: ${JSON.stringify(type)} is not supported (basic is)`);
  const ref = a('auth-secret');
  if (!ref) return deny('auth-secret: missing; auth-type basic needs the Secret of its users');
  const name = ref.includes('/') ? ref : `${ing.metadata.namespace}/${ref}`;
  const secret = secrets.get(name);
  if (!secret) return deny(`auth-secret: Secret ${name} not found`);
  const data = (k: string) => (secret.data?.[k] === undefined ? undefined : Buffer.from(secret.data[k]!, 'base64').toString('utf8'));
  const users = new Map<string, string>();
  if ((a('auth-secret-type') ?? 'auth-file') === 'auth-map') {
    for (const user of Object.keys(secret.data ?? {})) users.set(user, data(user)!.trim());
  } else {
    const file = data('auth');
    if (file === undefined) return deny(`auth-secret: Secret ${name} has no key "auth" (an htpasswd file)`);
    for (const line of file.split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) users.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
  }
  for (const [user, hash] of users) {
    if (!knownFormat(hash)) {
      problem('InvalidAnnotation', `auth-secret ${name}: the password hash of user ${JSON.stringify(user)} is in a format kubewire cannot check (bcrypt, $apr1$, $1$, {SHA}, {PLAIN} are): that user cannot log in`);
      users.delete(user);
    }
  }
  if (!users.size) return deny(`auth-secret: Secret ${name} has no users`);
  const realm = (a('auth-realm') ?? 'Authentication Required').replace(/["\\\r\n]/g, '');
  return { auth: { realm, users } };
}

const knownFormat = (hash: string) => /^\$2[aby]\$\d\d\$.{53}$/.test(hash) || /^\$(apr1|1)\$[^$]{1,8}\$[./0-9A-Za-z]{22}$/.test(hash) || hash.startsWith('{SHA}') || hash.startsWith('{PLAIN}');

/** Whether an Authorization header carries a user of `auth` with the right password. */
export function authorized(auth: BasicAuth, header: string | undefined): boolean {
  if (!header || !/^basic /i.test(header)) return false;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const hash = auth.users.get(decoded.slice(0, colon));
  return hash !== undefined && passwordMatches(hash, decoded.slice(colon + 1));
}

const verified = new Map<string, true>();
const MAX_REMEMBERED = 1000;

function passwordMatches(hash: string, password: string): boolean {
  const key = `${hash}\0${createHash('sha256').update(password).digest('base64')}`;
  if (verified.has(key)) return true;
  let ok: boolean;
  if (hash.startsWith('$2')) ok = bcrypt.compareSync(password, hash);
  else if (hash.startsWith('{SHA}')) ok = same(createHash('sha1').update(password).digest('base64'), hash.slice(5));
  else if (hash.startsWith('{PLAIN}')) ok = same(password, hash.slice(7));
  else {
    const [, magic, salt] = hash.split('$');
    ok = same(md5Crypt(password, salt!, `$${magic}$`), hash);
  }
  if (ok) {
    if (verified.size >= MAX_REMEMBERED) verified.clear();
    verified.set(key, true);
  }
  return ok;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** MD5-crypt (Poul-Henning Kamp's), with magic `$1$`, or Apache's variant `$apr1$`. */
export function md5Crypt(password: string, salt: string, magic: string): string {
  const md5 = (...parts: Array<Buffer | string>) => {
    const h = createHash('md5');
    for (const p of parts) h.update(p);
    return h.digest();
  };
  const pw = Buffer.from(password);
  const alternate = md5(pw, salt, pw);
  const first = createHash('md5').update(pw).update(magic).update(salt);
  for (let n = pw.length; n > 0; n -= 16) first.update(alternate.subarray(0, Math.min(16, n)));
  for (let i = pw.length; i; i >>= 1) first.update(i & 1 ? Buffer.from([0]) : pw.subarray(0, 1));
  let f = first.digest();
  for (let i = 0; i < 1000; i++) {
    const h = createHash('md5');
    h.update(i & 1 ? pw : f);
    if (i % 3) h.update(salt);
    if (i % 7) h.update(pw);
    h.update(i & 1 ? f : pw);
    f = h.digest();
  }
  let out = '';
  const to64 = (v: number, n: number) => {
    for (; n > 0; n--, v >>= 6) out += ITOA64[v & 0x3f];
  };
  for (const [a, b, c] of [[0, 6, 12], [1, 7, 13], [2, 8, 14], [3, 9, 15], [4, 10, 5]] as const) to64((f[a]! << 16) | (f[b]! << 8) | f[c]!, 4);
  to64(f[11]!, 2);
  return `${magic}${salt}$${out}`;
}
