// The "who am I, what may I do" reviews that kubectl (`auth whoami`, `auth can-i`, `auth
// can-i --list`) and dashboards (k9s, Headlamp, Lens check access before they show a
// view) send: create-only resources that store nothing and answer about the requester.
//   - authentication.k8s.io/v1 SelfSubjectReview: the user the request was authenticated as;
//   - authorization.k8s.io/v1 SelfSubjectAccessReview: may they do this verb on this resource;
//   - authorization.k8s.io/v1 SelfSubjectRulesReview: everything they may do in a namespace.
// kubewire has no RBAC: every authenticated user (a certificate of the cluster's CA, or
// root on the unix socket) may do everything, and the answers say so.

import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { REVIEW_RESOURCES, type ResourceType } from '../api/resources.ts';
import { ADMIN, ADMIN_GROUPS } from '../identity/pki.ts';
import { StatusError } from './status.ts';

export { REVIEW_RESOURCES };
export const REVIEW_VERBS = ['create'];

export interface UserInfo {
  username: string;
  groups: string[];
}

/** The user of a certificate's subject (CN the name, O the groups), as the x509 authenticator reads it. */
export function userOfSubject(subject: { CN?: string | string[]; O?: string | string[] } | undefined): UserInfo | undefined {
  const cn = [subject?.CN ?? []].flat()[0];
  if (!cn) return undefined;
  return { username: cn, groups: [...[subject?.O ?? []].flat(), 'system:authenticated'] };
}

/** Who sent a request: the TLS client certificate's subject; root on the unix socket is the admin. */
export function requester(req: IncomingMessage): UserInfo {
  const tls = req.socket as Partial<TLSSocket>;
  const fromCert = typeof tls.getPeerCertificate === 'function' ? userOfSubject(tls.getPeerCertificate()?.subject as { CN?: string; O?: string }) : undefined;
  return fromCert ?? { username: ADMIN.commonName, groups: [...ADMIN_GROUPS, 'system:authenticated'] };
}

const NO_RBAC = 'kubewire has no RBAC: every authenticated user may do everything';

type Body = { apiVersion?: unknown; kind?: unknown; metadata?: Record<string, unknown>; spec?: Record<string, unknown> } | undefined;

/** The answer to a POST of a review (pure); a StatusError for a body that is not one. */
export function review(rt: ResourceType, body: unknown, user: UserInfo): object {
  const b = body as Body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new StatusError(400, 'BadRequest', `the body of a ${rt.kind} must be a JSON object`);
  if (b.kind !== undefined && b.kind !== rt.kind) throw new StatusError(400, 'BadRequest', `the body's kind ${JSON.stringify(b.kind)} does not match the resource ${rt.plural} (expected ${rt.kind})`);
  const head = { kind: rt.kind, apiVersion: `${rt.group}/${rt.version}`, metadata: { creationTimestamp: null } };
  const spec = b.spec ?? {};
  switch (rt.kind) {
    case 'SelfSubjectReview':
      return { ...head, status: { userInfo: user } };
    case 'SelfSubjectAccessReview': {
      const attrs = spec.resourceAttributes ?? spec.nonResourceAttributes;
      if (typeof attrs !== 'object' || attrs === null) throw new StatusError(422, 'Invalid', `SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified`);
      return { ...head, spec, status: { allowed: true, reason: NO_RBAC } };
    }
    case 'SelfSubjectRulesReview':
      if (typeof spec.namespace !== 'string' || !spec.namespace) throw new StatusError(422, 'Invalid', 'SelfSubjectRulesReview.authorization.k8s.io "" is invalid: spec.namespace: Required value: namespace is required');
      return {
        ...head,
        spec,
        status: { resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }], nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }], incomplete: false, evaluationError: '' },
      };
    default:
      throw new StatusError(404, 'NotFound', `the server could not find the requested resource ${rt.plural}`);
  }
}

/** The review resource a path names (/apis/G/V/PLURAL), if any. */
export function reviewAt(pathname: string): ResourceType | undefined {
  const m = /^\/apis\/([^/]+)\/([^/]+)\/([^/]+)\/?$/.exec(pathname);
  return m ? REVIEW_RESOURCES.find((r) => r.group === m[1] && r.version === m[2] && r.plural === m[3]) : undefined;
}
