// A trace in words, in one place: each hop's WHAT column, its address changes, the whole trace
// as the CLI prints it, and as JSON (`-o json`, the page's API). Pure and free of the engine, so
// the page's bundle renders hops with the same code as the CLI.

import type { Hop, Leg, Trace, Translation } from './types.ts';

/** Address changes in words: "destination 10.96.0.10:80 → 10.244.1.3:8080, SNAT ...". */
export function translationText(nat: Translation[]): string {
  return nat.map((t) => (t.kind === 'connection' ? `a new connection to ${t.to} from port ${t.sourcePort}` : `${t.kind}${t.from !== undefined ? ` ${t.from}` : ''} → ${t.to}`)).join(', ');
}

/** A hop's structured address changes with their words (both, or neither when there are none). */
export function withNat(nat: Translation[]): { nat?: Translation[]; translation?: string } {
  return nat.length ? { nat, translation: translationText(nat) } : {};
}

/** What a hop did, in one cell: its detail, the rule, a netfilter verdict, the NAT. */
export function hopWhat(h: Hop): string {
  return [h.detail, h.rule && `rule: ${h.rule}`, h.verdict && h.kind === 'netfilter' && `verdict: ${h.verdict}`, h.translation && `NAT: ${h.translation}`].filter(Boolean).join('; ');
}

/** Rows as aligned columns (two spaces apart; the last column unpadded). */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function hopRows(hops: Hop[]): string[][] {
  return [['#', 'WHERE', 'KIND', 'IN', 'OUT', 'WHAT'], ...hops.map((h, i) => [String(i + 1), h.netns, h.kind, h.in ?? '', h.out ?? '', hopWhat(h)])];
}

function leg(name: string, l: Leg): string {
  return `${name}:\n${table(hopRows(l.hops))}\n${name} verdict: ${l.verdict.toUpperCase()}: ${l.reason}`;
}

/** The trace as `kubewire trace` prints it. */
export function renderTrace(t: Trace): string {
  const to = `${t.probe.dst}${t.probe.dport !== undefined ? `:${t.probe.dport}` : ''}${t.probe.http ? ` (HTTP Host ${t.probe.http.host}, ${t.probe.http.path})` : ''}`;
  const lines = [`trace ${t.probe.from} → ${to} (${t.probe.protocol}, probe ${t.probe.protocol === 'icmp' ? 'echo id' : 'source port'} ${t.probe.sport}); the sender saw: ${t.fate}`, '', leg('request', t)];
  if (t.reply) lines.push('', leg('reply', t.reply));
  lines.push('', `VERDICT: ${t.verdict}: ${t.reason}`);
  return lines.join('\n');
}

/** The trace as `-o json` prints it: every field, the structured ones beside their words. */
export function traceJson(t: unknown): string {
  return JSON.stringify(t, null, 2);
}
