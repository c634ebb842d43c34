// nftables as the kernel keeps it, in memory, for the ip and inet families: tables of chains, maps and
// sets, changed by `nft -f` transactions that apply whole or not at all, and refused as the
// kernel refuses them: a jump, goto or @reference to what does not exist, a chain or set
// deleted while referenced (or a chain while it has rules), an element deleted that is not
// there, a map element added again with another value. It reads the forms kubewire writes
// (a `table ip|inet NAME { ... }` block, and add/delete/flush commands); rules are kept as text.
// Tables are keyed "FAMILY NAME".

import { DataplaneError, type DataplaneErrorCode, type NftFamily } from '../port.ts';

const FAMILIES = new Set(['ip', 'inet']);

interface Chain {
  /** "type nat hook prerouting priority dstnat; policy accept;" for a base chain. */
  base?: string;
  rules: string[];
}

interface Collection {
  kind: 'map' | 'set';
  /** type, flags, comment... as written. */
  header: string[];
  /** key -> value ('' for a set). */
  elements: Map<string, string>;
}

interface Table {
  chains: Map<string, Chain>;
  collections: Map<string, Collection>;
}

const fail = (code: DataplaneErrorCode, why: string): never => {
  throw new DataplaneError(code, `nft: ${why}`);
};

/** Splits `text` at newlines and semicolons outside braces and quotes; trims and drops empty pieces. */
function statements(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (!quoted) {
      if (ch === '{') depth++;
      if (ch === '}') depth--;
      if (depth === 0 && (ch === '\n' || ch === ';')) {
        if (cur.trim()) out.push(cur.trim());
        cur = '';
        continue;
      }
    }
    cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** "words ... { body }" split into the words before the outermost braces and the body (undefined without braces). */
function headAndBody(stmt: string): [string, string | undefined] {
  const open = stmt.indexOf('{');
  if (open < 0) return [stmt.trim(), undefined];
  const close = stmt.lastIndexOf('}');
  if (close < open) fail('invalid', `syntax error: unbalanced braces in ${JSON.stringify(stmt.slice(0, 80))}`);
  return [stmt.slice(0, open).trim(), stmt.slice(open + 1, close)];
}

/** Elements of "{ a : b, c : d }" (the braces' content), split at top-level commas. */
function elementsOf(body: string, kind: 'map' | 'set'): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let depth = 0;
  let cur = '';
  const push = () => {
    const e = cur.trim().replace(/\s+/g, ' ');
    cur = '';
    if (!e) return;
    if (kind === 'set') return void out.push([e, '']);
    const at = e.indexOf(' : ');
    if (at < 0) fail('invalid', `map element without a value: ${JSON.stringify(e)}`);
    out.push([e.slice(0, at), e.slice(at + 3)]);
  };
  for (const ch of body) {
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (ch === ',' && depth === 0) push();
    else cur += ch;
  }
  push();
  return out;
}

/** The chains a rule or element value jumps or goes to. */
function chainRefs(text: string): string[] {
  return [...text.matchAll(/\b(?:jump|goto) ([^\s,}]+)/g)].map((m) => m[1]!);
}

/** The sets and maps a rule names (@name). */
function collectionRefs(text: string): string[] {
  return [...text.matchAll(/@([^\s,}]+)/g)].map((m) => m[1]!);
}

function copyTable(t: Table): Table {
  return {
    chains: new Map([...t.chains].map(([k, c]) => [k, { base: c.base, rules: [...c.rules] }])),
    collections: new Map([...t.collections].map(([k, c]) => [k, { kind: c.kind, header: [...c.header], elements: new Map(c.elements) }])),
  };
}

export class FakeNftables {
  private tables = new Map<string, Table>();

  /** `nft -f -`: all of the script, or nothing. */
  apply(script: string): void {
    const staged = new Map([...this.tables].map(([k, t]) => [k, copyTable(t)]));
    for (const stmt of statements(script)) this.command(staged, stmt);
    for (const [name, t] of staged) this.check(name, t);
    this.tables = staged;
  }

  tableNames(family: NftFamily = 'ip'): string[] {
    return [...this.tables.keys()].filter((k) => k.startsWith(`${family} `)).map((k) => k.slice(family.length + 1));
  }

  /** `nft list table FAMILY NAME` (the structure, not nft's exact formatting); undefined when missing. */
  list(name: string, family: NftFamily = 'ip'): string | undefined {
    const t = this.tables.get(`${family} ${name}`);
    if (!t) return undefined;
    const lines = [`table ${family} ${name} {`];
    for (const [n, c] of t.collections) {
      lines.push(`\t${c.kind} ${n} {`, ...c.header.map((h) => `\t\t${h}`));
      if (c.elements.size) lines.push(`\t\telements = { ${[...c.elements].map(([k, v]) => (c.kind === 'map' ? `${k} : ${v}` : k)).join(',\n\t\t\t     ')} }`);
      lines.push('\t}');
    }
    for (const [n, c] of t.chains) lines.push(`\tchain ${n} {`, ...(c.base ? [`\t\t${c.base}`] : []), ...c.rules.map((r) => `\t\t${r}`), '\t}');
    lines.push('}', '');
    return lines.join('\n');
  }

  private command(tables: Map<string, Table>, stmt: string): void {
    const [head, body] = headAndBody(stmt);
    const words = head.split(/\s+/);
    // The block form: table ip NAME { ... }
    if (words[0] === 'table') {
      const t = this.tableOf(tables, words, 1, true);
      for (const item of statements(body ?? '')) this.tableItem(t, item);
      return;
    }
    const [verb, what] = words;
    if (!['add', 'create', 'delete', 'flush'].includes(verb!)) fail('invalid', `syntax error, unexpected ${JSON.stringify(verb)}`);
    if (what === 'table') {
      if (!FAMILIES.has(words[2]!)) fail('invalid', `only the ip and inet families are kept here: ${JSON.stringify(stmt)}`);
      const name = `${words[2]} ${words[3]}`;
      if (verb === 'add' || verb === 'create') {
        if (tables.has(name)) {
          if (verb === 'create') fail('exists', `File exists: table ${name}`);
        } else tables.set(name, { chains: new Map(), collections: new Map() });
        if (body) for (const item of statements(body)) this.tableItem(tables.get(name)!, item);
      } else if (!tables.has(name)) fail('not-found', `No such file or directory: table ${name}`);
      else if (verb === 'delete') tables.delete(name);
      else for (const c of tables.get(name)!.chains.values()) c.rules = [];
      return;
    }
    const t = this.tableOf(tables, words, 2, false);
    const name = words[4];
    if (!name) fail('invalid', `syntax error: no name in ${JSON.stringify(stmt)}`);
    switch (what) {
      case 'chain': {
        const chain = t.chains.get(name!);
        if (verb === 'add' || verb === 'create') {
          if (chain && verb === 'create') fail('exists', `File exists: chain ${name}`);
          const c = chain ?? { rules: [] };
          if (body) c.base = statements(body).join('; ') + ';';
          t.chains.set(name!, c);
        } else if (!chain) fail('not-found', `No such file or directory: chain ${name}`);
        else if (verb === 'flush') chain!.rules = [];
        else {
          if (chain!.rules.length) fail('busy', `Device or resource busy: chain ${name} has rules`);
          if (this.referencesChain(t, name!)) fail('busy', `Device or resource busy: chain ${name} is referenced`);
          t.chains.delete(name!);
        }
        return;
      }
      case 'rule': {
        if (verb !== 'add') fail('invalid', `only rules are added here: ${JSON.stringify(stmt)}`);
        const chain = t.chains.get(name!);
        if (!chain) fail('not-found', `No such file or directory: chain ${name}`);
        chain!.rules.push((/^\S+\s+rule\s+(?:ip|inet)\s+\S+\s+\S+\s+([\s\S]*)$/.exec(stmt)?.[1] ?? '').trim().replace(/\s+/g, ' '));
        return;
      }
      case 'map':
      case 'set': {
        const c = t.collections.get(name!);
        if (verb === 'add' || verb === 'create') {
          if (c && verb === 'create') fail('exists', `File exists: ${what} ${name}`);
          const made = c ?? { kind: what, header: [], elements: new Map<string, string>() };
          if (!c) this.collectionBody(made, body ?? '');
          t.collections.set(name!, made);
        } else if (!c) fail('not-found', `No such file or directory: ${what} ${name}`);
        else if (verb === 'flush') c!.elements.clear();
        else {
          for (const [chain, ch] of t.chains) if (ch.rules.some((r) => collectionRefs(r).includes(name!))) fail('busy', `Device or resource busy: ${what} ${name} is used by chain ${chain}`);
          t.collections.delete(name!);
        }
        return;
      }
      case 'element': {
        const c = t.collections.get(name!);
        if (!c) fail('not-found', `No such file or directory: set ${name}`);
        for (const [k, v] of elementsOf(body ?? '', verb === 'delete' ? 'set' : c!.kind)) {
          if (verb === 'delete') {
            if (!c!.elements.delete(k.split(' : ')[0]!)) fail('not-found', `No such file or directory: element ${k} of ${name}`);
          } else if (c!.elements.has(k) && c!.elements.get(k) !== v) fail('exists', `File exists: element ${k} of ${name}`);
          else c!.elements.set(k, v);
        }
        return;
      }
      default:
        fail('invalid', `syntax error, unexpected ${JSON.stringify(what)}`);
    }
  }

  private tableOf(tables: Map<string, Table>, words: string[], at: number, create: boolean): Table {
    if (!FAMILIES.has(words[at]!)) fail('invalid', `only the ip and inet families are kept here: ${words.join(' ')}`);
    const name = `${words[at]} ${words[at + 1]}`;
    let t = tables.get(name);
    if (!t && create) tables.set(name, (t = { chains: new Map(), collections: new Map() }));
    if (!t) fail('not-found', `No such file or directory: table ${name}`);
    return t!;
  }

  /** One item of a table block: comment, map, set or chain. */
  private tableItem(t: Table, item: string): void {
    const [head, body] = headAndBody(item);
    const [kind, name] = head.split(/\s+/);
    if (kind === 'comment') return;
    if (kind === 'chain') {
      const c = t.chains.get(name!) ?? { rules: [] };
      for (const s of statements(body ?? '')) {
        if (/^type \S+ hook /.test(s)) c.base = s;
        else if (/^policy /.test(s)) c.base = `${c.base ?? ''}; ${s}`;
        else c.rules.push(s.replace(/\s+/g, ' '));
      }
      t.chains.set(name!, c);
      return;
    }
    if (kind === 'map' || kind === 'set') {
      const c = t.collections.get(name!) ?? { kind, header: [], elements: new Map<string, string>() };
      this.collectionBody(c, body ?? '');
      t.collections.set(name!, c);
      return;
    }
    fail('invalid', `syntax error in table: ${JSON.stringify(item.slice(0, 80))}`);
  }

  private collectionBody(c: Collection, body: string): void {
    for (const s of statements(body)) {
      const m = /^elements\s*=\s*\{([\s\S]*)\}$/.exec(s);
      if (m) for (const [k, v] of elementsOf(m[1]!, c.kind)) c.elements.set(k, v);
      else c.header.push(s);
    }
  }

  private referencesChain(t: Table, chain: string): boolean {
    for (const c of t.chains.values()) if (c.rules.some((r) => chainRefs(r).includes(chain))) return true;
    for (const c of t.collections.values()) for (const v of c.elements.values()) if (chainRefs(v).includes(chain)) return true;
    return false;
  }

  /** What the kernel checks at commit: every jump, goto and @reference resolves. */
  private check(table: string, t: Table): void {
    for (const [name, c] of t.chains) {
      for (const r of c.rules) {
        for (const ref of chainRefs(r)) if (!t.chains.has(ref)) fail('not-found', `No such file or directory: chain ${ref} (jumped to from ${table}/${name})`);
        for (const ref of collectionRefs(r)) if (!t.collections.has(ref)) fail('not-found', `No such file or directory: set ${ref} (used in ${table}/${name})`);
      }
    }
    for (const [name, c] of t.collections) for (const v of c.elements.values()) for (const ref of chainRefs(v)) if (!t.chains.has(ref)) fail('not-found', `No such file or directory: chain ${ref} (in map ${name})`);
  }
}
