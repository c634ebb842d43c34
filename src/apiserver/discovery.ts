// API discovery, as kube-apiserver answers it: which groups, versions and resources the
// server has, with their verbs, short names, categories and subresources. Every kubectl
// command starts here (GET /api and /apis, cached under ~/.kube/cache/discovery).
//   - aggregated (apidiscovery.k8s.io v2, or v2beta1): one answer per /api and /apis, chosen
//     by the Accept header (application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList);
//   - legacy: /api APIVersions, /apis APIGroupList, /apis/G APIGroup, /api/v1 and /apis/G/V
//     APIResourceList (subresources as pods/log, deployments/scale).
// Built from RESOURCES (src/api/resources.ts) and the reviews (reviews.ts); kubewire's own /apis/kubewire.dev/v1/apply is
// not an API resource and stays out. Pure functions, and one adapter (serveDiscovery).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { RESOURCES, type ResourceType } from '../api/resources.ts';
import { REVIEW_RESOURCES, REVIEW_VERBS } from './reviews.ts';

/** What kubewire serves for every kind: no deletecollection (DELETE on a collection is 405). */
const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

/** Every served resource: the stored kinds, and the create-only reviews (auth whoami, can-i). */
const SERVED: readonly ResourceType[] = [...RESOURCES, ...REVIEW_RESOURCES];
const verbsOf = (rt: ResourceType) => (REVIEW_RESOURCES.includes(rt) ? REVIEW_VERBS : VERBS);

interface GVK {
  group: string;
  version: string;
  kind: string;
}

interface Subresource {
  name: string;
  verbs: string[];
  /** The kind it answers with, when not the resource's own (Scale, PodExecOptions...). */
  responseKind?: GVK;
}

const core = (kind: string): GVK => ({ group: '', version: 'v1', kind });
const SCALE: Subresource = { name: 'scale', verbs: ['get', 'patch', 'update'], responseKind: { group: 'autoscaling', version: 'v1', kind: 'Scale' } };

/** Upstream's subresources of the served kinds (kube-apiserver's discovery for 1.32). */
export const SUBRESOURCES: Readonly<Record<string, Subresource[]>> = {
  Pod: [
    { name: 'attach', verbs: ['create', 'get'], responseKind: core('PodAttachOptions') },
    { name: 'exec', verbs: ['create', 'get'], responseKind: core('PodExecOptions') },
    { name: 'log', verbs: ['get'] },
    { name: 'portforward', verbs: ['create', 'get'], responseKind: core('PodPortForwardOptions') },
  ],
  Deployment: [SCALE],
  ReplicaSet: [SCALE],
  StatefulSet: [SCALE],
};

/** Kinds with a status subresource upstream (the rest have no status, or none of their own). */
const WITH_STATUS = new Set(['Namespace', 'Node', 'Pod', 'Service', 'Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'Ingress']);

/** `kubectl get all`: the kinds upstream puts in the category "all". */
const CATEGORY_ALL = new Set(['Pod', 'Service', 'Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicationController', 'HorizontalPodAutoscaler']);

export function subresourcesOf(rt: ResourceType): Subresource[] {
  const status: Subresource[] = WITH_STATUS.has(rt.kind) ? [{ name: 'status', verbs: ['get', 'patch', 'update'] }] : [];
  return [...(SUBRESOURCES[rt.kind] ?? []), ...status].sort((a, b) => a.name.localeCompare(b.name));
}

export function categoriesOf(rt: ResourceType): string[] {
  return CATEGORY_ALL.has(rt.kind) ? ['all'] : [];
}

/** Served group versions, core first, then groups in name order: [{group: '', version: 'v1'}, {group: 'apps', ...}]. */
export function groupVersions(resources: readonly ResourceType[] = RESOURCES): Array<{ group: string; version: string }> {
  const seen = new Map<string, { group: string; version: string }>();
  for (const r of resources) seen.set(`${r.group}/${r.version}`, { group: r.group, version: r.version });
  return [...seen.values()].sort((a, b) => (a.group === b.group ? a.version.localeCompare(b.version) : a.group === '' ? -1 : b.group === '' ? 1 : a.group.localeCompare(b.group)));
}

const gvString = (group: string, version: string) => (group ? `${group}/${version}` : version);

/** The APIResourceList of /api/v1 or /apis/G/V; undefined for a group version not served. */
export function apiResourceList(group: string, version: string, resources: readonly ResourceType[] = SERVED): object | undefined {
  const rts = resources.filter((r) => r.group === group && r.version === version);
  if (!rts.length) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: gvString(group, version),
    resources: rts
      .flatMap((rt) => [
        {
          name: rt.plural,
          singularName: rt.singular,
          namespaced: rt.namespaced,
          kind: rt.kind,
          verbs: verbsOf(rt),
          ...(rt.shortNames.length ? { shortNames: rt.shortNames } : {}),
          ...(categoriesOf(rt).length ? { categories: categoriesOf(rt) } : {}),
        },
        ...subresourcesOf(rt).map((s) => ({
          name: `${rt.plural}/${s.name}`,
          singularName: '',
          namespaced: rt.namespaced,
          ...(s.responseKind?.group ? { group: s.responseKind.group, version: s.responseKind.version } : {}),
          kind: s.responseKind?.kind ?? rt.kind,
          verbs: s.verbs,
        })),
      ])
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** /api: the core group's versions. */
export function apiVersions(serverAddress = '127.0.0.1:6443'): object {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function apiGroup(group: string, resources: readonly ResourceType[]): object | undefined {
  const versions = groupVersions(resources).filter((gv) => gv.group === group).map((gv) => ({ groupVersion: gvString(group, gv.version), version: gv.version }));
  if (!versions.length) return undefined;
  return { name: group, versions, preferredVersion: versions[0] };
}

/** /apis: every served group but the core one. */
export function apiGroupList(resources: readonly ResourceType[] = SERVED): object {
  const groups = [...new Set(groupVersions(resources).map((gv) => gv.group))].filter((g) => g);
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => apiGroup(g, resources)) };
}

export type AggregatedVersion = 'v2' | 'v2beta1';

/** The APIGroupDiscoveryList of /api (core: true) or /apis (every other group). */
export function aggregatedDiscovery(coreGroup: boolean, version: AggregatedVersion = 'v2', resources: readonly ResourceType[] = SERVED): object {
  const gvs = groupVersions(resources).filter((gv) => (gv.group === '') === coreGroup);
  const groups = [...new Set(gvs.map((gv) => gv.group))];
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: `apidiscovery.k8s.io/${version}`,
    metadata: {},
    items: groups.map((group) => ({
      metadata: { name: group, creationTimestamp: null },
      versions: gvs
        .filter((gv) => gv.group === group)
        .map((gv) => ({
          version: gv.version,
          resources: resources
            .filter((r) => r.group === group && r.version === gv.version)
            .sort((a, b) => a.plural.localeCompare(b.plural))
            .map((rt) => ({
              resource: rt.plural,
              responseKind: { group, version: gv.version, kind: rt.kind },
              scope: rt.namespaced ? 'Namespaced' : 'Cluster',
              singularResource: rt.singular,
              verbs: verbsOf(rt),
              ...(rt.shortNames.length ? { shortNames: rt.shortNames } : {}),
              ...(categoriesOf(rt).length ? { categories: categoriesOf(rt) } : {}),
              ...(subresourcesOf(rt).length
                ? { subresources: subresourcesOf(rt).map((s) => ({ subresource: s.name, responseKind: s.responseKind ?? { group, version: gv.version, kind: rt.kind }, verbs: s.verbs })) }
                : {}),
            })),
          freshness: 'Current',
        })),
    })),
  };
}

/**
 * The aggregated discovery version an Accept header asks for, in the client's order of
 * preference (kubectl offers v2, then v2beta1, then plain JSON); undefined = legacy.
 */
export function aggregatedVersionOf(accept: string | undefined): AggregatedVersion | undefined {
  for (const range of (accept ?? '').split(',')) {
    const [type = '', ...rest] = range.split(';').map((s) => s.trim().toLowerCase());
    const params = Object.fromEntries(rest.map((p) => p.split('=').map((s) => s.trim()) as [string, string]));
    if (type !== 'application/json' || params.g !== 'apidiscovery.k8s.io' || params.as !== 'apigroupdiscoverylist') {
      if (type === 'application/json' && !params.as) return undefined; // plain JSON comes first: legacy
      continue;
    }
    if (params.v === 'v2' || params.v === 'v2beta1') return params.v;
  }
  return undefined;
}

export const aggregatedContentType = (v: AggregatedVersion) => `application/json;g=apidiscovery.k8s.io;v=${v};as=APIGroupDiscoveryList`;

/** The discovery answer for a path, or undefined when the path is not a discovery path. */
export function discoveryFor(pathname: string, accept: string | undefined, serverAddress?: string): { contentType: string; body: object } | undefined {
  const path = pathname.replace(/\/+$/, '');
  const json = (body: object | undefined) => (body ? { contentType: 'application/json', body } : undefined);
  if (path === '/api' || path === '/apis') {
    const v = aggregatedVersionOf(accept);
    if (v) return { contentType: aggregatedContentType(v), body: aggregatedDiscovery(path === '/api', v) };
    return json(path === '/api' ? apiVersions(serverAddress) : apiGroupList());
  }
  let m = /^\/api\/([^/]+)$/.exec(path);
  if (m) return json(apiResourceList('', m[1]!));
  m = /^\/apis\/([^/]+)$/.exec(path);
  if (m) {
    const g = apiGroup(m[1]!, SERVED);
    return g ? json({ kind: 'APIGroup', apiVersion: 'v1', ...g }) : undefined;
  }
  m = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
  if (m) return json(apiResourceList(m[1]!, m[2]!));
  return undefined;
}

/** Answers a GET of a discovery path; false when the request is not one (the caller goes on). */
export function serveDiscovery(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const host = req.socket.localPort ? `${req.socket.localAddress ?? '127.0.0.1'}:${req.socket.localPort}` : undefined;
  const answer = discoveryFor(url.pathname, req.headers.accept, host?.replace(/^::ffff:/, ''));
  if (!answer) return false;
  const text = JSON.stringify(answer.body);
  res.writeHead(200, { 'content-type': answer.contentType, 'content-length': Buffer.byteLength(text), vary: 'Accept' });
  res.end(req.method === 'HEAD' ? undefined : text);
  return true;
}
