// A small seeded generator for the fuzz tests: the same inputs every run (a failure names its
// seed and case, and replays), no dependency.

export interface Gen {
  /** A float in [0, 1). */
  next(): number;
  int(max: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
  /** A string of `n` characters from `alphabet`. */
  text(n: number, alphabet?: string): string;
}

/** mulberry32: 32 bits of state, good enough spread for picking cases. */
export function gen(seed: number): Gen {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const int = (max: number) => Math.floor(next() * max);
  const ASCII = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
  return {
    next,
    int,
    pick: (xs) => xs[int(xs.length)]!,
    chance: (p) => next() < p,
    text: (n, alphabet = ASCII) => Array.from({ length: n }, () => alphabet[int(alphabet.length)]).join(''),
  };
}

/** Strings that break parsers: empty, blank, control and odd characters, long ones, look-alikes of valid forms. */
export const ODD_STRINGS: readonly string[] = [
  '', ' ', '\t', '\n', '\r\n', '\u0000', '\u0000nul', '\u202e', 'ünïcödé', '😀', '\ud800', '%', '%00', '%2e%2e', '../', '..\\', '/',
  '$(id)', '`id`', ';rm -rf /', '<script>', '"', "'", '\\', '{}', '[]', 'null', 'undefined', 'NaN', '-1', '0', '1e3', '0x10',
  'a'.repeat(64), 'a'.repeat(254), 'x'.repeat(5000), '-leading', 'trailing-', 'UPPER', 'with space', 'a..b', 'a.', '.a', '*',
  'constructor', '__proto__', 'prototype', 'toString', 'hasOwnProperty',
];

/** Values a JSON body can hold, odd ones first. */
export function oddJson(g: Gen, depth = 0): unknown {
  switch (g.int(14)) {
    case 0: return null;
    case 1: return g.pick([0, -1, 1, 65535, 65536, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, -1e308, 0.5, 80.0000001, -0]);
    case 2: return g.pick(ODD_STRINGS);
    case 3: return g.text(g.int(40));
    case 4: return g.chance(0.5);
    case 5: return [];
    case 6: return {};
    case 7: return depth > 8 ? 1 : [oddJson(g, depth + 1), oddJson(g, depth + 1)];
    case 8: return depth > 8 ? 1 : { [g.pick(ODD_STRINGS)]: oddJson(g, depth + 1) };
    case 9: return String(g.int(70000));
    case 10: return `${g.int(300)}.${g.int(300)}.${g.int(300)}.${g.int(300)}`;
    default: return g.text(g.int(12), 'abcdefghijklmnopqrstuvwxyz0123456789-./:');
  }
}
