// Generates src/api/protobuf/descriptor.ts: the protobuf messages of the kinds kubewire
// serves (and every message they reach), from upstream's generated.proto files of
// k8s.io/api and k8s.io/apimachinery at the release kubewire reports (v0.32 = Kubernetes
// 1.32). Field names and numbers are the wire format kubectl and client-go speak
// (application/vnd.kubernetes.protobuf); comments are left out.
//
//   node --import tsx scripts/gen-protobuf.ts API_REPO APIMACHINERY_REPO [TAG]
// where the repos are git directories of kubernetes/api and kubernetes/apimachinery.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { RESOURCES, REVIEW_RESOURCES } from '../src/api/resources.ts';

const [apiRepo, machineryRepo, tag = 'v0.32.9'] = process.argv.slice(2);
if (!apiRepo || !machineryRepo) throw new Error('usage: gen-protobuf.ts API_REPO APIMACHINERY_REPO [TAG]');

const show = (repo: string, path: string) => execFileSync('git', ['-C', repo, 'show', `${tag}:${path}`], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
const FILES: Array<[string, string]> = [
  [machineryRepo, 'pkg/runtime/generated.proto'],
  [machineryRepo, 'pkg/runtime/schema/generated.proto'],
  [machineryRepo, 'pkg/util/intstr/generated.proto'],
  [machineryRepo, 'pkg/api/resource/generated.proto'],
  [machineryRepo, 'pkg/apis/meta/v1/generated.proto'],
  ...['core/v1', 'apps/v1', 'batch/v1', 'networking/v1', 'discovery/v1', 'coordination/v1', 'rbac/v1', 'autoscaling/v1', 'policy/v1', 'authentication/v1', 'authorization/v1'].map((gv) => [apiRepo, `${gv}/generated.proto`] as [string, string]),
];

// Go structs embedded with `json:",inline"` are one field on the wire and their fields at the
// parent's level in JSON (Probe's handler, IngressRule's ingressRuleValue, Volume's volumeSource).
const inline = new Set<string>();
const omitEmpty = new Set<string>();
for (const [repo, path] of FILES) {
  const goFile = path.replace(/generated\.proto$/, 'types.go');
  let source = '';
  try {
    source = show(repo, goFile);
  } catch {
    continue; // runtime/schema and friends: no inline fields
  }
  const pkg = protobuf.parse(show(repo, path), { keepCase: true }).package!;
  let struct = '';
  for (const line of source.split('\n')) {
    const start = /^type (\w+) struct \{/.exec(line);
    if (start) struct = start[1]!;
    const field = /^\s+(\w+)\s+`json:",inline" protobuf:"[^"]*?(?:name=(\w+))?"/.exec(line);
    if (field && struct) inline.add(`${pkg}.${struct}.${field[2] ?? field[1]![0]!.toLowerCase() + field[1]!.slice(1)}`);
    // Go writes every non-pointer scalar on the wire, zero or not; JSON leaves out the zero ones tagged omitempty.
    const scalar = /^\s+\w+\s+(string|bool|u?int\d*|float\d*|\w+)\s+`json:"[^",]*,omitempty[^"]*" protobuf:"(?:varint|bytes|fixed\d+),\d+,(?:opt|req),name=(\w+)/.exec(line);
    if (scalar && struct) omitEmpty.add(`${pkg}.${struct}.${scalar[2]}`);
  }
}

const root = new protobuf.Root();
for (const [repo, path] of FILES) protobuf.parse(show(repo, path), root, { keepCase: true, alternateCommentMode: false });
root.resolveAll();

/** The proto package of a group/version: core/v1 -> k8s.io.api.core.v1, apps/v1 -> k8s.io.api.apps.v1. */
const packageOf = (group: string, version: string) => `k8s.io.api.${group ? group.split('.')[0] : 'core'}.${version}`;

// Every message reachable from the served kinds (and the Unknown envelope and the scale subresource).
const wanted = new Set<string>();
const visit = (t: protobuf.Type) => {
  if (wanted.has(t.fullName)) return;
  wanted.add(t.fullName);
  for (const f of t.fieldsArray) if (f.resolvedType instanceof protobuf.Type) visit(f.resolvedType);
};
for (const rt of [...RESOURCES, ...REVIEW_RESOURCES]) visit(root.lookupType(`${packageOf(rt.group, rt.version)}.${rt.kind}`));
for (const extra of ['k8s.io.apimachinery.pkg.runtime.Unknown', 'k8s.io.api.autoscaling.v1.Scale', 'k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions', 'k8s.io.apimachinery.pkg.apis.meta.v1.Status']) visit(root.lookupType(extra));

// A JSON descriptor of just those messages, grouped by package as protobufjs reads it back.
const out: Record<string, unknown> = {};
for (const name of [...wanted].sort()) {
  const t = root.lookupType(name);
  const fields = Object.fromEntries(
    t.fieldsArray.map((f) => {
      const type = f.resolvedType ? f.resolvedType.fullName.replace(/^\./, '') : f.type;
      const field: Record<string, unknown> = { type, id: f.id };
      if (f.repeated) field.rule = 'repeated';
      if (f instanceof protobuf.MapField) field.keyType = f.keyType;
      if (inline.has(`${name.replace(/^\./, '')}.${f.name}`)) field.inline = true;
      else if (!f.resolvedType && !f.repeated && omitEmpty.has(`${name.replace(/^\./, '')}.${f.name}`)) field.omitEmpty = true;
      return [f.name, field];
    }),
  );
  out[name.replace(/^\./, '')] = { fields };
}
// A module (not a .json file) so that the CLI bundle and tsx load it alike.
const file = join(import.meta.dirname, '..', 'src', 'api', 'protobuf', 'descriptor.ts');
writeFileSync(
  file,
  `// Generated by scripts/gen-protobuf.ts from k8s.io/api and k8s.io/apimachinery ${tag} generated.proto: do not edit.\n` +
    `export const DESCRIPTOR_JSON = ${JSON.stringify(JSON.stringify({ messages: out }))};\n`,
);
console.log(`${wanted.size} messages (${inline.size} inline fields, ${omitEmpty.size} zero-omitted scalars) -> ${file}`);
