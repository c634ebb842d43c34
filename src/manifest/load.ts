// Reads manifests as kubectl does (-f FILE, -f DIR of .yaml/.yml/.json, -f - for stdin;
// multi-document YAML; v1 List) and checks every object before anything is sent, so that
// a bad document anywhere stops the whole apply with nothing changed. Each problem names
// the file, the document's index and the field.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
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

/** Parses and checks one file's text; problems are pushed to `problems`. */
export function parseManifests(source: string, text: string, problems: string[], opts: LoadOptions = {}): Manifest[] {
  const out: Manifest[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  let index = 0;
  for (const doc of list) {
    const i = index++;
    if (doc.errors.length) {
      const err = doc.errors[0]!;
      const pos = err.linePos?.[0];
      problems.push(`${source}: document ${i}: YAML syntax error${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}: ${err.message.split('\n')[0]}`);
      continue;
    }
    const value: unknown = doc.toJS();
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
