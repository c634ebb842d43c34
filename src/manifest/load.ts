// Reads manifests as kubectl does (-f FILE, -f DIR of .yaml/.yml/.json, -f - for stdin;
// multi-document YAML; v1 List) and checks every object before anything is sent, so that
// a bad document anywhere stops the whole apply with nothing changed. Each problem names
// the file, the document's index and the field.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CORE_SCHEMA, load, YAMLException } from 'js-yaml';
import { typeOfManifest, type ResourceType } from '../api/resources.ts';
import type { KubeObject } from '../api/types.ts';
import { validate } from '../api/validation.ts';
import { unknownFields } from '../api/fields.ts';

export class ManifestError extends Error {
  override name = 'ManifestError';
}

export interface Manifest {
  source: string; // file name, or <stdin>
  index: number; // document index in its file, from 0 as kubectl counts
  rt: ResourceType;
  object: KubeObject;
}

/** The files a -f argument stands for, in kubectl's order (a directory's files sorted). */
export function manifestFiles(arg: string): string[] {
  if (arg === '-') return ['-'];
  let st;
  try {
    st = statSync(arg);
  } catch {
    throw new ManifestError(`the path ${JSON.stringify(arg)} does not exist`);
  }
  if (!st.isDirectory()) return [arg];
  const files = readdirSync(arg).filter((f) => /\.(ya?ml|json)$/.test(f)).sort().map((f) => join(arg, f));
  if (!files.length) throw new ManifestError(`no .yaml, .yml or .json files in directory ${arg}`);
  return files;
}

function describe(source: string, index: number, obj?: Partial<KubeObject>): string {
  const what = obj?.kind && typeof obj.metadata?.name === 'string' ? ` (${obj.kind} ${JSON.stringify(obj.metadata.name)})` : '';
  return `${source}: document ${index}${what}`;
}

export interface LoadOptions {
  /** kubectl's --validate: 'strict' (default) refuses unknown fields; 'ignore' accepts them. */
  validate?: 'strict' | 'ignore';
}

/** A document's text and the line it starts on (0-based). */
interface DocumentText {
  text: string;
  line: number;
}

/**
 * The documents of a YAML stream, split at its `---` markers (and `...` ends), each parsed
 * alone so that a syntax error costs only its document. (js-yaml, three to four times
 * faster than the `yaml` package on a long manifest: a 20,000-document apply reads in
 * seconds.)
 */
export function splitDocuments(text: string): DocumentText[] {
  const docs: DocumentText[] = [];
  const hasContent = (lines: string[]) => lines.some((l) => l.trim() && !l.trimStart().startsWith('#'));
  let current: string[] = [];
  let start = 0;
  let marked = false; // a '---' was seen: what comes before the first one is a document only if it has content
  let ended = false; // a '...' ended the last document: a '---' right after starts the next, it ends none
  text.split('\n').forEach((line, i) => {
    const begins = /^---(?:[ \t]|$)/.test(line);
    if (!begins && !/^\.\.\.[ \t]*$/.test(line)) return void current.push(line);
    if ((marked && !(ended && begins)) || hasContent(current)) docs.push({ text: current.join('\n'), line: start });
    marked = true;
    ended = !begins;
    current = begins ? [line.slice(3)] : [];
    start = i;
  });
  if (marked || hasContent(current)) docs.push({ text: current.join('\n'), line: start });
  return docs;
}

/** Nodes a document would have with its aliases expanded, counted without expanding them (a shared subtree counts each time). */
function expandedSize(v: unknown, memo = new Map<object, number>()): number {
  if (!v || typeof v !== 'object') return 1;
  const known = memo.get(v);
  if (known !== undefined) return known;
  memo.set(v, 1); // a cycle counts once
  let n = 1;
  for (const x of Object.values(v)) n += expandedSize(x, memo);
  memo.set(v, n);
  return n;
}

/** More nodes than this once aliases are expanded is a billion-laughs document. */
const MAX_EXPANDED_NODES = 1_000_000;

/** Parses and checks one file's text; problems are pushed to `problems`. */
export function parseManifests(source: string, text: string, problems: string[], opts: LoadOptions = {}): Manifest[] {
  const out: Manifest[] = [];
  let index = 0;
  for (const doc of splitDocuments(text)) {
    const i = index++;
    let value: unknown;
    try {
      value = load(doc.text, { schema: CORE_SCHEMA, filename: source });
    } catch (e) {
      if (!(e instanceof YAMLException)) throw e;
      const at = e.mark ? ` at line ${doc.line + e.mark.line + 1}, column ${e.mark.column + 1}` : '';
      problems.push(`${source}: document ${i}: YAML syntax error${at}: ${e.reason}`);
      continue;
    }
    if (expandedSize(value) > MAX_EXPANDED_NODES) {
      problems.push(`${source}: document ${i}: its aliases expand to more than ${MAX_EXPANDED_NODES.toLocaleString('en')} nodes (a resource exhaustion attack?)`);
      continue;
    }
    if (value === null || value === undefined) continue; // empty document (a trailing ---)
    if (typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${source}: document ${i}: not a Kubernetes object (a mapping with apiVersion, kind and metadata)`);
      continue;
    }
    const obj = value as KubeObject;
    const items = obj.kind === 'List' && Array.isArray(obj.items) ? (obj.items as KubeObject[]) : [obj];
    items.forEach((item, j) => {
      const where = items.length > 1 || item !== obj ? `${describe(source, i)}, items[${j}]${item?.kind && item.metadata?.name ? ` (${item.kind} ${JSON.stringify(item.metadata.name)})` : ''}` : describe(source, i, item);
      const rt = typeOfManifest(item?.apiVersion, item?.kind);
      if (typeof rt === 'string') return void problems.push(`${where}: ${rt}`);
      if (typeof item.metadata !== 'object' || item.metadata === null) return void problems.push(`${where}: metadata.name: Required value`);
      const errors = validate(item);
      for (const e of errors) problems.push(`${where}: ${e.field}: ${e.detail}`);
      const unknown = opts.validate === 'ignore' ? [] : unknownFields(item as unknown as Record<string, unknown>);
      for (const f of unknown) problems.push(`${where}: strict decoding error: unknown field "${f}" (--validate=false accepts it)`);
      if (!errors.length && !unknown.length) out.push({ source, index: i, rt, object: item });
    });
  }
  return out;
}

/** Loads every -f argument; throws one ManifestError listing every problem found. */
export function loadManifests(args: string[], stdin: () => string = () => readFileSync(0, 'utf8'), opts: LoadOptions = {}): Manifest[] {
  const problems: string[] = [];
  const out: Manifest[] = [];
  for (const arg of args) {
    for (const file of manifestFiles(arg)) {
      let text: string;
      try {
        text = file === '-' ? stdin() : readFileSync(file, 'utf8');
      } catch (e) {
        problems.push(`${file}: cannot read: ${(e as Error).message}`);
        continue;
      }
      out.push(...parseManifests(file === '-' ? '<stdin>' : file, text, problems, opts));
    }
  }
  if (problems.length) throw new ManifestError(`nothing was applied:\n  ${problems.join('\n  ')}`);
  if (!out.length) throw new ManifestError(`no objects passed to apply`);
  return out;
}
