// Generates src/api/openapi/schemas.ts: the OpenAPI v3 component schemas of every kind
// kubewire serves (src/api/resources.ts RESOURCES, plus their Lists and the few API types
// the paths answer with), and every definition they reach, as upstream's apiserver writes
// them (/openapi/v3/api/v1 components.schemas). Run when RESOURCES or the sources change:
//   node --import tsx scripts/gen-openapi.ts [path to a kubernetes/api and kubernetes/apimachinery checkout]
// Sources, none written by hand:
//   - structure, field descriptions, required fields, enums: the .d.ts files of the npm
//     package kubernetes-models (and @kubernetes-models/apimachinery), walked with the
//     TypeScript compiler API (interface IIoK8sApiCoreV1Affinity = io.k8s.api.core.v1.Affinity);
//   - integer formats (int32/int64), byte, double: @kubernetes/client-node's generated models
//     (attributeTypeMap), which carry the OpenAPI formats kubernetes-models drops;
//   - strategic-merge and apply extensions (x-kubernetes-patch-strategy, -patch-merge-key,
//     -list-type, -list-map-keys, -map-type): upstream's Go struct tags and +markers in
//     k8s.io/api and k8s.io/apimachinery types.go at the tag matching kubernetes-models,
//     read from git mirrors (KUBE_API_GIT, KUBE_APIMACHINERY_GIT).

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';
import { RESOURCES } from '../src/api/resources.ts';

const require = createRequire(import.meta.url);
const MODELS = dirname(require.resolve('kubernetes-models/package.json'));
const MACHINERY = join(MODELS, '..', '@kubernetes-models', 'apimachinery');
const KUBE_TAG = process.env.KUBE_TAG ?? 'v0.36.3'; // kubernetes-models 5.1.0 has 1.36's PodSpec.schedulingGroup
const API_GIT = process.env.KUBE_API_GIT ?? '/work/.mirror/kubernetes+api/repo';
const MACHINERY_GIT = process.env.KUBE_APIMACHINERY_GIT ?? '/work/.mirror/kubernetes+apimachinery/repo';
const OUT = 'src/api/openapi/schemas.ts';

type Schema = Record<string, unknown>;

/** The roots: every served kind, its List, and what the paths answer or take. */
function rootFiles(): string[] {
  const file = (group: string, version: string, kind: string) => join(MODELS, group ? `${group}/${version}` : version, `${kind}.d.ts`);
  const extra: Array<[string, string, string]> = [['autoscaling', 'v1', 'Scale']];
  const kinds: Array<[string, string, string]> = [...RESOURCES.map((r) => [r.group, r.version, r.kind] as [string, string, string]), ...extra];
  return [
    ...kinds.flatMap(([g, v, k]) => [file(g, v, k), ...(k === 'Scale' ? [] : [file(g, v, `${k}List`)])]),
    ...['Status', 'DeleteOptions', 'Patch'].map((k) => join(MACHINERY, 'apis/meta/v1', `${k}.d.ts`)),
  ];
}

/** io.k8s.api.core.v1.Pod from .../kubernetes-models/v1/Pod.d.ts, io.k8s.apimachinery.pkg.apis.meta.v1.Time from .../apis/meta/v1/Time.d.ts. */
function definitionOfFile(file: string): string {
  if (file.startsWith(MACHINERY)) return `io.k8s.apimachinery.pkg.${relative(MACHINERY, file).replace(/\.d\.ts$/, '').split('/').join('.')}`;
  const parts = relative(MODELS, file).replace(/\.d\.ts$/, '').split('/');
  if (parts.length === 2) return `io.k8s.api.core.${parts.join('.')}`;
  const [group, version, name] = parts as [string, string, string];
  return `io.k8s.api.${group.split('.')[0]}.${version}.${name}`;
}

/** Upstream's v3 form of the apimachinery scalars (kube-openapi OpenAPIDefinitions). */
const SCALARS: Record<string, Schema> = {
  'io.k8s.apimachinery.pkg.util.intstr.IntOrString': { format: 'int-or-string', oneOf: [{ type: 'integer' }, { type: 'string' }] },
  'io.k8s.apimachinery.pkg.api.resource.Quantity': { oneOf: [{ type: 'string' }, { type: 'number' }] },
  'io.k8s.apimachinery.pkg.apis.meta.v1.Time': { format: 'date-time', type: 'string' },
  'io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime': { format: 'date-time', type: 'string' },
  'io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1': { type: 'object' },
  'io.k8s.apimachinery.pkg.runtime.RawExtension': { type: 'object' },
  'io.k8s.apimachinery.pkg.apis.meta.v1.Patch': { type: 'object' },
};

// ---- Go struct tags and markers -------------------------------------------------------

interface GoField { json: string; strategy?: string; mergeKey?: string; listType?: string; listMapKeys?: string[]; mapType?: string }
interface GoStruct { fields: GoField[]; inline: string[]; mapType?: string }

function gitShow(repo: string, path: string): string {
  return execFileSync('git', ['-C', repo, 'show', `${KUBE_TAG}:${path}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

function gitFiles(repo: string, dir: string): string[] {
  return execFileSync('git', ['-C', repo, 'ls-tree', '--name-only', `${KUBE_TAG}`, `${dir}/`], { encoding: 'utf8' })
    .split('\n')
    .filter((f) => f.endsWith('.go') && !f.endsWith('_test.go') && !/generated|zz_/.test(f));
}

/** The structs of a Go package: json names, patch tags, +listType/+listMapKey/+mapType/+structType markers. */
export function parseGoStructs(source: string): Map<string, GoStruct> {
  const out = new Map<string, GoStruct>();
  let current: GoStruct | undefined;
  let markers: string[] = [];
  for (const line of source.split('\n')) {
    const marker = /^\s*\/\/\s*\+(listType|listMapKey|mapType|structType)=(\S+)/.exec(line);
    if (marker) {
      markers.push(`${marker[1]}=${marker[2]}`);
      continue;
    }
    if (/^\s*\/\//.test(line)) continue;
    const start = /^type (\w+) struct \{/.exec(line);
    if (start) {
      const typeMarker = markers.find((m) => m.startsWith('structType=') || m.startsWith('mapType='));
      current = { fields: [], inline: [], mapType: typeMarker?.endsWith('=atomic') ? 'atomic' : undefined };
      out.set(start[1]!, current);
      markers = [];
      continue;
    }
    if (!current) {
      if (line.trim()) markers = [];
      continue;
    }
    if (/^\}/.test(line)) {
      current = undefined;
      markers = [];
      continue;
    }
    const field = /^\s*(\w+)(?:\s+([^`]+))?\s*`([^`]*)`/.exec(line);
    if (!field) continue;
    const tags = Object.fromEntries([...field[3]!.matchAll(/(\w+):"([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const json = (tags.json ?? '').split(',')[0]!;
    if (!json && /inline/.test(tags.json ?? '')) {
      current.inline.push((field[2] ? field[2].trim() : field[1]!).replace(/^\*/, '').replace(/^\w+\./, ''));
    } else if (json && json !== '-') {
      const f: GoField = { json };
      if (tags.patchStrategy) f.strategy = tags.patchStrategy;
      if (tags.patchMergeKey) f.mergeKey = tags.patchMergeKey;
      for (const m of markers) {
        const [k, v] = m.split('=') as [string, string];
        if (k === 'listType') f.listType = v;
        if (k === 'listMapKey') (f.listMapKeys ??= []).push(v);
        if (k === 'mapType' && v === 'atomic') f.mapType = v;
      }
      current.fields.push(f);
    }
    markers = [];
  }
  return out;
}

/** Definition name -> Go struct, for the packages served kinds live in. */
function goStructs(): Map<string, GoStruct> {
  const out = new Map<string, GoStruct>();
  const packages: Array<[string, string, string]> = [
    [API_GIT, 'core/v1', 'io.k8s.api.core.v1'],
    [API_GIT, 'apps/v1', 'io.k8s.api.apps.v1'],
    [API_GIT, 'batch/v1', 'io.k8s.api.batch.v1'],
    [API_GIT, 'networking/v1', 'io.k8s.api.networking.v1'],
    [API_GIT, 'discovery/v1', 'io.k8s.api.discovery.v1'],
    [API_GIT, 'autoscaling/v1', 'io.k8s.api.autoscaling.v1'],
    [API_GIT, 'coordination/v1', 'io.k8s.api.coordination.v1'],
    [MACHINERY_GIT, 'pkg/apis/meta/v1', 'io.k8s.apimachinery.pkg.apis.meta.v1'],
  ];
  for (const [repo, dir, prefix] of packages) {
    const structs = new Map<string, GoStruct>();
    for (const f of gitFiles(repo, dir)) for (const [n, s] of parseGoStructs(gitShow(repo, f))) structs.set(n, s);
    // Inlined structs (EphemeralContainer embeds EphemeralContainerCommon) lend their fields.
    const flatten = (s: GoStruct, seen = new Set<GoStruct>()): GoField[] =>
      seen.has(s) ? [] : (seen.add(s), [...s.fields, ...s.inline.flatMap((n) => (structs.get(n) ? flatten(structs.get(n)!, seen) : []))]);
    for (const [n, s] of structs) out.set(`${prefix}.${n}`, { ...s, fields: flatten(s) });
  }
  return out;
}

// ---- OpenAPI formats from @kubernetes/client-node --------------------------------------

type AttributeMap = Array<{ name: string; baseName: string; type: string; format: string }>;
const clientNode = require('@kubernetes/client-node') as Record<string, { getAttributeTypeMap?: () => AttributeMap }>;

/** client-node's model of a definition: V1Pod, CoreV1EndpointPort, AppsV1... (it qualifies names that clash). */
function attributesOf(definition: string): Map<string, string> | undefined {
  const m = /^io\.k8s\.(?:api\.(\w+)|apimachinery\.pkg\.apis\.(\w+))\.(v\w+)\.(\w+)$/.exec(definition);
  if (!m) return undefined;
  const cap = (s: string) => s[0]!.toUpperCase() + s.slice(1);
  const pkg = m[1] ?? m[2]!;
  for (const name of [`${cap(pkg)}${cap(m[3]!)}${m[4]}`, `${cap(m[3]!)}${m[4]}`]) {
    const attrs = clientNode[name]?.getAttributeTypeMap?.();
    if (attrs) return new Map(attrs.map((a) => [a.baseName, a.format]));
  }
  return undefined;
}

// ---- The walk over kubernetes-models' declarations --------------------------------------

const program = ts.createProgram(rootFiles(), { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, skipLibCheck: true, noEmit: true });
const checker = program.getTypeChecker();
const go = goStructs();
const schemas: Record<string, Schema> = {};
const queue: Array<{ name: string; decl: ts.InterfaceDeclaration | ts.TypeAliasDeclaration }> = [];

function docOf(node: ts.Node): string {
  const sym = (node as { name?: ts.Node }).name ? checker.getSymbolAtLocation((node as unknown as { name: ts.Node }).name) : undefined;
  return sym ? ts.displayPartsToString(sym.getDocumentationComment(checker)).trim() : '';
}

function declarationOf(ref: ts.TypeReferenceNode): ts.InterfaceDeclaration | ts.TypeAliasDeclaration | undefined {
  let sym = checker.getSymbolAtLocation(ref.typeName);
  if (sym && sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
  const decl = sym?.declarations?.[0];
  return decl && (ts.isInterfaceDeclaration(decl) || ts.isTypeAliasDeclaration(decl)) ? decl : undefined;
}

/** A $ref to a declaration, queued for its own schema. */
function refTo(decl: ts.InterfaceDeclaration | ts.TypeAliasDeclaration): Schema {
  const name = definitionOfFile(decl.getSourceFile().fileName);
  if (!schemas[name] && !queue.some((q) => q.name === name)) queue.push({ name, decl });
  return { $ref: `#/components/schemas/${name}` };
}

function schemaOfType(node: ts.TypeNode, format: string): Schema {
  if (node.kind === ts.SyntaxKind.StringKeyword) return format === 'byte' ? { type: 'string', format } : { type: 'string' };
  if (node.kind === ts.SyntaxKind.BooleanKeyword) return { type: 'boolean' };
  if (node.kind === ts.SyntaxKind.NumberKeyword) return format === 'double' ? { type: 'number', format } : format ? { type: 'integer', format } : { type: 'integer' };
  if (ts.isLiteralTypeNode(node) && ts.isStringLiteral(node.literal)) return { type: 'string' }; // apiVersion: "v1"
  if (ts.isUnionTypeNode(node) && node.types.every((t) => ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal))) {
    return { type: 'string', enum: node.types.map((t) => ((t as ts.LiteralTypeNode).literal as ts.StringLiteral).text) };
  }
  if (ts.isTypeReferenceNode(node) && node.typeName.getText() === 'Array' && node.typeArguments?.[0]) {
    const items = schemaOfType(node.typeArguments[0], format);
    return { type: 'array', items: items.$ref ? { allOf: [items], default: {} } : items };
  }
  if (ts.isTypeLiteralNode(node)) {
    const index = node.members.find(ts.isIndexSignatureDeclaration);
    if (index) {
      const value = schemaOfType(index.type, format);
      return { type: 'object', additionalProperties: value.$ref ? { allOf: [value], default: {} } : value };
    }
    return { type: 'object' };
  }
  if (ts.isTypeReferenceNode(node)) {
    const decl = declarationOf(node);
    if (decl) return refTo(decl);
  }
  throw new Error(`unhandled type ${node.getText()} in ${node.getSourceFile().fileName}`);
}

function schemaOfInterface(name: string, decl: ts.InterfaceDeclaration): Schema {
  const formats = attributesOf(name);
  const goFields = new Map((go.get(name)?.fields ?? []).map((f) => [f.json, f]));
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const member of decl.members) {
    if (!ts.isPropertySignature(member) || !member.type) continue;
    const field = member.name.getText().replace(/^"|"$/g, '');
    let s = schemaOfType(member.type, formats?.get(field) ?? '');
    const description = docOf(member) || TYPE_META[field] || '';
    if (s.$ref) s = { allOf: [s], ...(description ? { description } : {}) };
    else if (description) s = { description, ...s };
    const g = goFields.get(field);
    if (g?.listType) s['x-kubernetes-list-type'] = g.listType;
    if (g?.listMapKeys) s['x-kubernetes-list-map-keys'] = g.listMapKeys;
    if (g?.mapType) s['x-kubernetes-map-type'] = g.mapType;
    if (g?.mergeKey) s['x-kubernetes-patch-merge-key'] = g.mergeKey;
    if (g?.strategy) s['x-kubernetes-patch-strategy'] = g.strategy;
    properties[field] = s;
    if (!member.questionToken && !['apiVersion', 'kind'].includes(field)) required.push(field);
  }
  const schema: Schema = { description: docOf(decl), type: 'object', properties: Object.fromEntries(Object.entries(properties).sort(([a], [b]) => a.localeCompare(b))) };
  if (!schema.description) delete schema.description;
  if (required.length) schema.required = required.sort();
  if (go.get(name)?.mapType) schema['x-kubernetes-map-type'] = go.get(name)!.mapType;
  const gvk = gvkOf(name, decl);
  if (gvk) schema['x-kubernetes-group-version-kind'] = [gvk];
  return schema;
}

/** A top-level kind's group/version/kind, from its literal apiVersion and kind properties. */
function gvkOf(name: string, decl: ts.InterfaceDeclaration): { group: string; kind: string; version: string } | undefined {
  const literal = (field: string) => {
    const m = decl.members.find((x) => ts.isPropertySignature(x) && x.name.getText().replace(/"/g, '') === field) as ts.PropertySignature | undefined;
    return m?.type && ts.isLiteralTypeNode(m.type) && ts.isStringLiteral(m.type.literal) ? m.type.literal.text : undefined;
  };
  const apiVersion = literal('apiVersion');
  const kind = literal('kind');
  if (apiVersion && kind) {
    const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
    return { group, kind, version };
  }
  // Status and DeleteOptions are v1 kinds of the core group too (upstream lists them per group; one is enough for kubectl).
  if (name === 'io.k8s.apimachinery.pkg.apis.meta.v1.Status' || name === 'io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions') return { group: '', kind: name.split('.').pop()!, version: 'v1' };
  return undefined;
}

/** The TypeMeta descriptions kubernetes-models leaves off apiVersion and kind, from client-node's V1Pod. */
const TYPE_META: Record<string, string> = (() => {
  const dts = readFileSync(join(dirname(require.resolve('@kubernetes/client-node')), 'gen/models/V1Pod.d.ts'), 'utf8');
  const out: Record<string, string> = {};
  for (const m of dts.matchAll(/\/\*\*\s*\n\s*\*\s*(.+?)\s*\n\s*\*\/\s*\n\s*'(apiVersion|kind)'/g)) out[m[2]!] = m[1]!.replace(/\\'/g, "'");
  return out;
})();

for (const file of rootFiles()) {
  const sf = program.getSourceFile(file);
  if (!sf) throw new Error(`kubernetes-models has no ${file}`);
  const decl = sf.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s));
  if (!decl) throw new Error(`${file} declares no interface`);
  refTo(decl);
}
while (queue.length) {
  const { name, decl } = queue.shift()!;
  if (SCALARS[name]) {
    const description = docOf(decl);
    schemas[name] = { ...(description ? { description } : {}), ...SCALARS[name] };
  } else if (ts.isInterfaceDeclaration(decl)) schemas[name] = schemaOfInterface(name, decl);
  else throw new Error(`${name}: a type alias with no upstream form`);
}

const sorted = Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
const json = JSON.stringify(sorted);
const models = JSON.parse(readFileSync(join(MODELS, 'package.json'), 'utf8')) as { version: string };
const client = JSON.parse(readFileSync(join(dirname(require.resolve('@kubernetes/client-node')), '..', 'package.json'), 'utf8')) as { version: string };
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(
  OUT,
  `// Generated by scripts/gen-openapi.ts: do not edit. ${Object.keys(sorted).length} definitions from kubernetes-models ${models.version},\n` +
    `// formats from @kubernetes/client-node ${client.version}, patch and list extensions from k8s.io/api and k8s.io/apimachinery ${KUBE_TAG}.\n` +
    `// One JSON string, parsed once when first needed (a literal object this size slows the type checker).\n` +
    `export const SCHEMAS_JSON = ${JSON.stringify(json)};\n`,
);
console.log(`${OUT}: ${Object.keys(sorted).length} definitions, ${json.length} bytes`);
