// iptables as the kernel keeps it, in memory: tables of chains of rules, changed only by
// whole iptables-restore transactions (--noflush) and refused as the kernel refuses them: a
// jump to a chain that does not exist, a chain deleted while still referenced or not empty,
// a rule deleted that is not there. Rules are kept as the text they were written in (the
// iptables-save form kubewire writes), so a save reads back what was restored.

import { DataplaneError } from '../port.ts';

const BUILTIN: Record<string, string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

/** Targets that are extensions, not chains. */
const TARGETS = new Set(['ACCEPT', 'DROP', 'RETURN', 'REJECT', 'QUEUE', 'MASQUERADE', 'DNAT', 'SNAT', 'REDIRECT', 'MARK', 'CONNMARK', 'LOG', 'TRACE', 'NOTRACK', 'CT', 'TPROXY', 'CHECKSUM', 'TCPMSS', 'NFLOG']);

interface Table {
  /** Chains in creation order (built-ins first), each its rules ("-A CHAIN ..." lines without the "-A CHAIN "). */
  chains: Map<string, string[]>;
  policies: Map<string, string>;
}

function emptyTable(name: string): Table {
  const builtins = BUILTIN[name];
  if (!builtins) throw new DataplaneError('invalid', `iptables: table ${JSON.stringify(name)} does not exist`);
  return { chains: new Map(builtins.map((c) => [c, []])), policies: new Map(builtins.map((c) => [c, 'ACCEPT'])) };
}

function copy(t: Table): Table {
  return { chains: new Map([...t.chains].map(([k, v]) => [k, [...v]])), policies: new Map(t.policies) };
}

/** The chain a rule jumps or goes to, if any. */
function targetOf(rule: string): string | undefined {
  return / -[jg] (\S+)/.exec(` ${rule}`)?.[1];
}

/** Splits "-A CHAIN rest" into its chain and the rest. */
function splitRule(line: string): [string, string] {
  const m = /^-[AIDC] (\S+)(?: (.*))?$/.exec(line);
  if (!m) throw new DataplaneError('invalid', `iptables-restore: bad line ${JSON.stringify(line)}`);
  return [m[1]!, m[2] ?? ''];
}

export class FakeIptables {
  private readonly tables = new Map<string, Table>();

  private table(name: string): Table {
    let t = this.tables.get(name);
    if (!t) this.tables.set(name, (t = emptyTable(name)));
    return t;
  }

  /** iptables-restore --noflush: every table in the script changes, or none does. */
  restore(script: string): void {
    const staged = new Map<string, Table>();
    let current: { name: string; t: Table } | undefined;
    let lineNo = 0;
    const fail = (code: ConstructorParameters<typeof DataplaneError>[0], why: string): never => {
      throw new DataplaneError(code, `iptables-restore: line ${lineNo} failed: ${why}`);
    };
    for (const raw of script.split('\n')) {
      lineNo++;
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        const name = line.slice(1);
        current = { name, t: copy(staged.get(name) ?? this.table(name)) };
        continue;
      }
      if (!current) fail('invalid', 'no table given (a line before *table)');
      const t = current!.t;
      if (line === 'COMMIT') {
        for (const [chain, rules] of t.chains) {
          for (const r of rules) {
            const target = targetOf(r);
            if (target && !TARGETS.has(target) && !t.chains.has(target)) fail('not-found', `Couldn't load target \`${target}' (in chain ${chain})`);
          }
        }
        staged.set(current!.name, t);
        current = undefined;
        continue;
      }
      if (line.startsWith(':')) {
        const [name, policy] = line.slice(1).split(' ');
        // A built-in chain keeps its rules (its policy may change); a user chain declared is
        // created, or flushed if it exists (--noflush leaves the undeclared ones alone).
        if (t.policies.has(name!)) {
          if (policy && policy !== '-') t.policies.set(name!, policy);
        } else t.chains.set(name!, []);
        continue;
      }
      const verb = line.slice(0, 2);
      if (verb === '-X' || verb === '-F' || verb === '-N') {
        const chain = line.slice(3).trim();
        if (verb === '-N') {
          if (t.chains.has(chain)) fail('exists', `Chain already exists: ${chain}`);
          t.chains.set(chain, []);
        } else if (!t.chains.has(chain)) fail('not-found', `No chain/target/match by that name: ${chain}`);
        else if (verb === '-F') t.chains.set(chain, []);
        else {
          if (t.policies.has(chain)) fail('invalid', `cannot delete built-in chain ${chain}`);
          if (t.chains.get(chain)!.length) fail('busy', `Directory not empty: chain ${chain}`);
          for (const [other, rules] of t.chains) if (rules.some((r) => targetOf(r) === chain)) fail('busy', `Too many links: chain ${chain} is referenced from ${other}`);
          t.chains.delete(chain);
        }
        continue;
      }
      if (verb === '-A' || verb === '-I' || verb === '-D') {
        const [chain, rest] = splitRule(line);
        const rules = t.chains.get(chain);
        if (!rules) fail('not-found', `Chain '${chain}' does not exist`);
        if (verb === '-A') rules!.push(rest);
        else if (verb === '-I') {
          const m = /^(\d+) (.*)$/.exec(rest);
          const at = m ? Number(m[1]) - 1 : 0;
          rules!.splice(at, 0, m ? m[2]! : rest);
        } else {
          const i = rules!.indexOf(rest);
          if (i < 0) fail('not-found', `Bad rule (does a matching rule exist in that chain?)`);
          rules!.splice(i, 1);
        }
        continue;
      }
      fail('invalid', `unknown line ${JSON.stringify(line)}`);
    }
    if (current) fail('invalid', `COMMIT expected for table ${current.name}`);
    for (const [name, t] of staged) this.tables.set(name, t);
  }

  /** The tables that exist (restored into, or read), as a save of all lists them. */
  names(): string[] {
    return [...this.tables.keys()];
  }

  /** iptables-save -t TABLE. */
  save(table: string): string {
    const t = this.table(table);
    const lines = [`*${table}`];
    for (const chain of t.chains.keys()) lines.push(`:${chain} ${t.policies.get(chain) ?? '-'} [0:0]`);
    for (const [chain, rules] of t.chains) for (const r of rules) lines.push(`-A ${chain}${r ? ` ${r}` : ''}`);
    lines.push('COMMIT', '');
    return lines.join('\n');
  }

  /** iptables -C: whether the chain holds the rule (false for a missing chain, as exit code 1 says). */
  hasRule(table: string, chain: string, rule: string[]): boolean {
    const text = rule.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ');
    return this.table(table).chains.get(chain)?.includes(text) ?? false;
  }
}
