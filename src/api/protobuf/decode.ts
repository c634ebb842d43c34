// Kubernetes' protobuf encoding (application/vnd.kubernetes.protobuf), as kubectl's `create`
// generators and client-go's typed clients send request bodies: the magic "k8s\0", then a
// runtime.Unknown envelope (apiVersion, kind, the object's bytes). The messages come from
// upstream's generated.proto (descriptor.ts, made by scripts/gen-protobuf.ts); protobufjs
// reads them. What the wire holds is turned into the object's JSON shape: intstr, Quantity,
// Time and RawExtension are messages on the wire and scalars or raw JSON in JSON.

import protobuf from 'protobufjs';
import { RESOURCES, REVIEW_RESOURCES, apiVersionOf } from '../resources.ts';
import { DESCRIPTOR_JSON } from './descriptor.ts';
import type { KubeObject } from '../types.ts';

const MAGIC = Buffer.from('k8s\0', 'latin1');
export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';

interface Descriptor {
  messages: Record<string, { fields: Record<string, { type: string; id: number; rule?: 'repeated'; keyType?: string; inline?: boolean; omitEmpty?: boolean }> }>;
}

/** Why a protobuf body cannot be read: the API server answers 400 with it. */
export class ProtobufError extends Error {}

let root: protobuf.Root | undefined;
/** Fields of Go structs embedded `json:",inline"`: one field on the wire, their fields at the parent's level in JSON. */
const inlined = new Set<protobuf.FieldBase>();
/** Non-pointer scalars tagged omitempty: Go writes them even when zero, JSON leaves the zero out. */
const omittedWhenZero = new Set<protobuf.FieldBase>();
function types(): protobuf.Root {
  if (root) return root;
  const { messages } = JSON.parse(DESCRIPTOR_JSON) as Descriptor;
  root = new protobuf.Root();
  for (const [fullName, m] of Object.entries(messages)) {
    const dot = fullName.lastIndexOf('.');
    const type = new protobuf.Type(fullName.slice(dot + 1));
    for (const [name, f] of Object.entries(m.fields)) {
      const ref = f.type.includes('.') ? `.${f.type}` : f.type;
      const field = f.keyType ? new protobuf.MapField(name, f.id, f.keyType, ref) : new protobuf.Field(name, f.id, ref, f.rule === 'repeated' ? 'repeated' : 'optional');
      type.add(field);
      if (f.inline) inlined.add(field);
      if (f.omitEmpty) omittedWhenZero.add(field);
    }
    root.define(fullName.slice(0, dot)).add(type);
  }
  root.resolveAll();
  return root;
}

/** The proto package of a group/version, as generated.proto names it: apps/v1 -> k8s.io.api.apps.v1, '' -> core. */
export function protoTypeName(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['', apiVersion];
  return `k8s.io.api.${group ? group.split('.')[0] : 'core'}.${version}.${kind}`;
}

const META = 'k8s.io.apimachinery.pkg';

/** RFC 3339 as the API server writes Time (seconds) and MicroTime (microseconds). */
function timeOf(v: { seconds?: number; nanos?: number }, micro: boolean): string {
  const ms = (v.seconds ?? 0) * 1000 + Math.floor((v.nanos ?? 0) / 1e6);
  const iso = new Date(ms).toISOString();
  if (!micro) return iso.replace(/\.\d+Z$/, 'Z');
  return iso.replace(/\.\d+Z$/, `.${String(Math.floor((v.nanos ?? 0) / 1000)).padStart(6, '0')}Z`);
}

/** A decoded message's plain object in the JSON shape of its type (pure). */
function toJson(type: protobuf.Type, value: Record<string, unknown>): unknown {
  switch (type.fullName.slice(1)) {
    case `${META}.util.intstr.IntOrString`:
      return Number(value.type ?? 0) === 1 ? String(value.strVal ?? '') : Number(value.intVal ?? 0);
    case `${META}.api.resource.Quantity`:
      return String(value.string ?? '');
    case `${META}.apis.meta.v1.Time`:
      return timeOf(value, false);
    case `${META}.apis.meta.v1.MicroTime`:
      return timeOf(value, true);
    case `${META}.apis.meta.v1.Duration`:
      return `${Number(value.duration ?? 0) / 1e9}s`;
    case `${META}.runtime.RawExtension`:
    case `${META}.apis.meta.v1.FieldsV1`: {
      const raw = (value.raw ?? value.Raw) as Uint8Array | undefined;
      if (!raw?.length) return {};
      try {
        return JSON.parse(Buffer.from(raw).toString('utf8'));
      } catch {
        throw new ProtobufError(`${type.name} holds bytes that are not JSON`);
      }
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value)) {
    const field = type.fields[name];
    if (!field || v === undefined || v === null) continue;
    if (omittedWhenZero.has(field) && (v === '' || v === 0 || v === false)) continue;
    const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    const convert = (x: unknown): unknown => (sub ? toJson(sub, x as Record<string, unknown>) : x instanceof Uint8Array ? Buffer.from(x).toString('base64') : typeof x === 'object' && x !== null && 'low' in x ? Number(x) : x);
    if (field instanceof protobuf.MapField) out[name] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, convert(x)]));
    else if (field.repeated) out[name] = (v as unknown[]).map(convert);
    else if (inlined.has(field)) Object.assign(out, convert(v));
    else out[name] = convert(v);
  }
  return out;
}

function decodeMessage(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  let type: protobuf.Type;
  try {
    type = types().lookupType(typeName);
  } catch {
    throw new ProtobufError(`no protobuf message ${typeName}`);
  }
  try {
    // Plain values, not protobufjs's Message: longs as numbers, bytes kept for the conversions above.
    return type.toObject(type.decode(bytes), { longs: Number, defaults: false }) as Record<string, unknown>;
  } catch (e) {
    throw new ProtobufError(`the ${type.name} bytes are not valid protobuf: ${(e as Error).message}`);
  }
}

/** A protobuf request body as the object it carries, in JSON shape; ProtobufError when it cannot be read. */
export function decodeObject(body: Buffer): KubeObject {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) throw new ProtobufError('the body does not start with the Kubernetes protobuf magic "k8s\\0"');
  const unknown = decodeMessage(`${META}.runtime.Unknown`, body.subarray(MAGIC.length));
  const typeMeta = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const { apiVersion, kind } = typeMeta;
  if (!apiVersion || !kind) throw new ProtobufError('the envelope names no apiVersion and kind');
  if (unknown.contentEncoding) throw new ProtobufError(`content encoding ${JSON.stringify(unknown.contentEncoding)} is not supported`);
  const served = [...RESOURCES, ...REVIEW_RESOURCES].some((r) => r.kind === kind && apiVersionOf(r) === apiVersion) || ['Scale', 'DeleteOptions'].includes(kind);
  if (!served) throw new ProtobufError(`${apiVersion} ${kind} is not a kind kubewire reads as protobuf`);
  const typeName = kind === 'DeleteOptions' ? `${META}.apis.meta.v1.DeleteOptions` : protoTypeName(apiVersion, kind);
  const raw = (unknown.raw as Uint8Array | undefined) ?? new Uint8Array();
  const type = types().lookupType(typeName);
  return { apiVersion, kind, ...(toJson(type, decodeMessage(typeName, raw)) as object) } as KubeObject;
}

/** The protobuf body of an object (what a client sends; the tests' encoder and kubewire's own check of the decoder). */
export function encodeObject(obj: KubeObject): Buffer {
  const typeName = protoTypeName(obj.apiVersion, obj.kind);
  const fromJson = (type: protobuf.Type, v: unknown): unknown => {
    switch (type.fullName.slice(1)) {
      case `${META}.util.intstr.IntOrString`:
        return typeof v === 'string' ? { type: 1, strVal: v } : { type: 0, intVal: v };
      case `${META}.api.resource.Quantity`:
        return { string: String(v) };
      case `${META}.apis.meta.v1.Time`:
      case `${META}.apis.meta.v1.MicroTime`: {
        const ms = Date.parse(String(v));
        return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
      }
      case `${META}.runtime.RawExtension`:
      case `${META}.apis.meta.v1.FieldsV1`:
        return { raw: Buffer.from(JSON.stringify(v)) };
    }
    const out: Record<string, unknown> = {};
    const given = v as Record<string, unknown>;
    // An inline struct takes its fields from the parent's level.
    for (const field of type.fieldsArray) {
      if (!inlined.has(field)) continue;
      const sub = field.resolvedType as protobuf.Type;
      const part = Object.fromEntries(Object.entries(given).filter(([k]) => k in sub.fields));
      if (Object.keys(part).length) out[field.name] = fromJson(sub, part);
    }
    for (const [name, x] of Object.entries(given)) {
      const field = type.fields[name];
      if (!field || inlined.has(field)) continue;
      const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
      const convert = (y: unknown) => (sub ? fromJson(sub, y) : field.type === 'bytes' && typeof y === 'string' ? Buffer.from(y, 'base64') : y);
      if (field instanceof protobuf.MapField) out[name] = Object.fromEntries(Object.entries(x as Record<string, unknown>).map(([k, y]) => [k, convert(y)]));
      else if (field.repeated) out[name] = (x as unknown[]).map(convert);
      else out[name] = convert(x);
    }
    return out;
  };
  const type = types().lookupType(typeName);
  const raw = type.encode(type.fromObject(fromJson(type, obj) as Record<string, unknown>)).finish();
  const envelope = types().lookupType(`${META}.runtime.Unknown`);
  return Buffer.concat([MAGIC, envelope.encode(envelope.fromObject({ typeMeta: { apiVersion: obj.apiVersion, kind: obj.kind }, raw, contentType: PROTOBUF_CONTENT_TYPE })).finish()]);
}
