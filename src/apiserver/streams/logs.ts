// The options of GET pods/NAME/log (core/v1 PodLogOptions), checked as kube-apiserver checks
// them (ValidatePodLogOptions): a bad value is a 422 naming the field, a value that does not
// parse a 400. Pure.

import { StatusError } from '../status.ts';

export interface LogQuery {
  container?: string;
  follow: boolean;
  tailLines?: number;
  /** Only lines written from this time on (epoch ms), from sinceSeconds or sinceTime. */
  since?: number;
  timestamps: boolean;
  limitBytes?: number;
  previous: boolean;
}

const truthy = (v: string | null) => v === 'true' || v === '1';

/** The log options of a query; `now` is the clock sinceSeconds counts back from. */
export function parseLogQuery(pod: string, q: URLSearchParams, now = Date.now()): LogQuery {
  const int = (name: string): number | undefined => {
    const v = q.get(name);
    if (v === null || v === '') return undefined;
    if (!/^-?\d+$/.test(v)) throw new StatusError(400, 'BadRequest', `${name}: unable to parse ${JSON.stringify(v)} as an integer`);
    return Number(v);
  };
  const invalid = (field: string, value: unknown, why: string) => new StatusError(422, 'Invalid', `PodLogOptions ${JSON.stringify(pod)} is invalid: ${field}: Invalid value: ${JSON.stringify(value)}: ${why}`);
  const tailLines = int('tailLines');
  const limitBytes = int('limitBytes');
  const sinceSeconds = int('sinceSeconds');
  const sinceTime = q.get('sinceTime') || undefined;
  if (tailLines !== undefined && tailLines < 0) throw invalid('tailLines', tailLines, 'must be greater than or equal to 0');
  if (limitBytes !== undefined && limitBytes < 1) throw invalid('limitBytes', limitBytes, 'must be greater than 0');
  if (sinceSeconds !== undefined && sinceSeconds < 1) throw invalid('sinceSeconds', sinceSeconds, 'must be greater than 0');
  if (sinceSeconds !== undefined && sinceTime !== undefined) throw new StatusError(422, 'Invalid', `PodLogOptions ${JSON.stringify(pod)} is invalid: sinceSeconds: Forbidden: at most one of \`sinceTime\` or \`sinceSeconds\` may be specified`);
  let since: number | undefined;
  if (sinceSeconds !== undefined) since = now - sinceSeconds * 1000;
  if (sinceTime !== undefined) {
    // RFC 3339, as metav1.Time parses it.
    since = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(sinceTime) ? Date.parse(sinceTime) : NaN;
    if (Number.isNaN(since)) throw new StatusError(400, 'BadRequest', `sinceTime: ${JSON.stringify(sinceTime)} is not an RFC 3339 time (2006-01-02T15:04:05Z)`);
  }
  return { container: q.get('container') || undefined, follow: truthy(q.get('follow')), tailLines, since, timestamps: truthy(q.get('timestamps')), limitBytes, previous: truthy(q.get('previous')) };
}
