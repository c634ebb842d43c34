// What a GET's Accept header asks for, as the API server negotiates it
// (apiserver/pkg/endpoints/handlers/negotiation): the object itself, a meta.k8s.io Table
// (`kubectl get`), or only metadata (PartialObjectMetadata[List], client-go's metadata
// informers). The first media range kubewire can serve wins; none at all is 406. Pure.

import { StatusError } from './status.ts';

export type View = { as: 'Object' } | { as: 'Table'; version: 'v1' | 'v1beta1' } | { as: 'PartialObjectMetadata'; version: 'v1' | 'v1beta1' };

const ACCEPTED = [
  'application/json',
  'application/json;as=Table;v=v1;g=meta.k8s.io',
  'application/json;as=Table;v=v1beta1;g=meta.k8s.io',
  'application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io',
  'application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io',
];

interface MediaRange {
  type: string;
  params: Record<string, string>;
}

function parseAccept(header: string): MediaRange[] {
  return header
    .split(',')
    .map((part) => {
      const [type = '', ...rest] = part.split(';').map((s) => s.trim());
      const params: Record<string, string> = {};
      for (const p of rest) {
        const i = p.indexOf('=');
        if (i > 0) params[p.slice(0, i).trim().toLowerCase()] = p.slice(i + 1).trim().replace(/^"(.*)"$/, '$1');
      }
      return { type: type.toLowerCase(), params };
    })
    .filter((r) => r.type);
}

/** The view of one media range, or undefined when kubewire cannot answer it. */
function viewOf(r: MediaRange, list: boolean): View | undefined {
  const as = r.params.as;
  if (!as) return { as: 'Object' }; // json, */*, and the encodings others negotiate (answered in JSON, as before)
  if (r.type !== 'application/json' && r.type !== 'application/*' && r.type !== '*/*') return undefined;
  if (r.params.g !== 'meta.k8s.io' || (r.params.v !== 'v1' && r.params.v !== 'v1beta1')) return undefined;
  if (as === 'Table') return { as: 'Table', version: r.params.v };
  if (as === (list ? 'PartialObjectMetadataList' : 'PartialObjectMetadata')) return { as: 'PartialObjectMetadata', version: r.params.v };
  return undefined;
}

/** The view a request asks for; a StatusError 406 NotAcceptable when no range can be served. */
export function negotiateView(accept: string | undefined, list: boolean): View {
  if (!accept) return { as: 'Object' };
  for (const r of parseAccept(accept)) {
    const v = viewOf(r, list);
    if (v) return v;
  }
  throw new StatusError(406, 'NotAcceptable', `only the following media types are accepted: ${ACCEPTED.join(', ')}`);
}

/** The Content-Type of an answer in that view. */
export function contentTypeOf(view: View, list: boolean): string {
  if (view.as === 'Table') return `application/json;as=Table;v=${view.version};g=meta.k8s.io`;
  if (view.as === 'PartialObjectMetadata') return `application/json;as=${list ? 'PartialObjectMetadataList' : 'PartialObjectMetadata'};v=${view.version};g=meta.k8s.io`;
  return 'application/json';
}

/** includeObject=None|Metadata|Object (a Table row's object); anything else is a 400, as upstream. */
export function includeObjectOf(value: string | null): 'None' | 'Metadata' | 'Object' {
  if (value === null || value === '' || value === 'Metadata') return 'Metadata';
  if (value === 'None' || value === 'Object') return value;
  throw new StatusError(400, 'BadRequest', `unrecognized includeObject value: ${JSON.stringify(value)}`);
}
