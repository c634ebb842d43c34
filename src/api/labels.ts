// Label selectors, as Kubernetes evaluates them (matchLabels AND matchExpressions), and the
// `-l key=value,key!=value,key in (a,b)` syntax kubectl and the API accept.

import type { LabelSelector } from './types.ts';

export type Labels = Record<string, string> | undefined;

export function matches(selector: LabelSelector | undefined, labels: Labels): boolean {
  if (!selector) return false;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const inValues = has && (e.values ?? []).includes(l[e.key]!);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Parses a selector string; throws naming the part it cannot read. */
export function parseSelector(text: string): LabelSelector {
  const selector: Required<LabelSelector> = { matchLabels: {}, matchExpressions: [] };
  // Split on commas outside parentheses.
  const parts = text.match(/([^,(]+(\([^)]*\))?)+/g) ?? [];
  for (const raw of parts) {
    const part = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^([\w./-]+)\s*(==|=)\s*([\w.-]*)$/))) selector.matchLabels[m[1]!] = m[3]!;
    else if ((m = part.match(/^([\w./-]+)\s*!=\s*([\w.-]*)$/))) selector.matchExpressions.push({ key: m[1]!, operator: 'NotIn', values: [m[2]!] });
    else if ((m = part.match(/^([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)$/))) {
      selector.matchExpressions.push({ key: m[1]!, operator: m[2] === 'in' ? 'In' : 'NotIn', values: m[3]!.split(',').map((v) => v.trim()).filter(Boolean) });
    } else if ((m = part.match(/^!([\w./-]+)$/))) selector.matchExpressions.push({ key: m[1]!, operator: 'DoesNotExist' });
    else if ((m = part.match(/^([\w./-]+)$/))) selector.matchExpressions.push({ key: m[1]!, operator: 'Exists' });
    else throw new Error(`unable to parse label selector requirement ${JSON.stringify(part)}`);
  }
  return selector;
}

export function formatSelector(selector: LabelSelector | undefined): string {
  if (!selector) return '<none>';
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator.toLowerCase()} (${(e.values ?? []).join(',')})`);
  }
  return parts.join(',') || '<none>';
}
