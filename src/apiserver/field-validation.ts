// Server-side field validation (?fieldValidation=Strict|Warn|Ignore on POST, PUT and PATCH),
// as kube-apiserver does it: the fields of a written object that its kind's schema does not
// define would be dropped, so Strict refuses the write (400 BadRequest, `strict decoding
// error: unknown field "spec.foo"`), Warn names each in a Warning header, Ignore says
// nothing. Absent means Warn, the default since v1.23 (apimachinery meta/v1 CreateOptions).
// kubectl sends Strict (its --validate=strict default) once /openapi/v3 says the server
// takes the parameter. The walk is pure; schemas come from openapi.ts.

import { RESOURCES } from '../api/resources.ts';
import { definitionOf, schemas, type Schema } from './openapi.ts';
import { StatusError } from './status.ts';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

const MODES: FieldValidation[] = ['Ignore', 'Strict', 'Warn'];

/** The mode a request asks for; a 400 naming the supported values for anything else. */
export function fieldValidationOf(param: string | null | undefined): FieldValidation {
  if (param === null || param === undefined || param === '') return 'Warn';
  if ((MODES as string[]).includes(param)) return param as FieldValidation;
  throw new StatusError(400, 'BadRequest', `fieldValidation: Unsupported value: ${JSON.stringify(param)}: supported values: ${MODES.map((m) => JSON.stringify(m)).join(', ')}`);
}

/** A schema with $ref and single-element allOf followed to the definition they name. */
function resolve(s: Schema | undefined, all: Record<string, Schema>): Schema | undefined {
  for (let i = 0; s && i < 8; i++) {
    if (typeof s.$ref === 'string') s = all[s.$ref.replace('#/components/schemas/', '')];
    else if (Array.isArray(s.allOf) && s.allOf.length === 1) s = s.allOf[0] as Schema;
    else return s;
  }
  return s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The paths of the fields `value` has that `schema` does not define, as the strict JSON
 * decoder names them (spec.template.spec.containers[0].foo), in document order.
 */
export function unknownFieldPaths(value: unknown, schema: Schema | undefined, all: Record<string, Schema> = schemas(), path = ''): string[] {
  const s = resolve(schema, all);
  if (!s) return [];
  const out: string[] = [];
  if (Array.isArray(value) && s.items) {
    value.forEach((v, i) => out.push(...unknownFieldPaths(v, s.items as Schema, all, `${path}[${i}]`)));
  } else if (isObject(value)) {
    const properties = s.properties as Record<string, Schema> | undefined;
    const additional = isObject(s.additionalProperties) ? (s.additionalProperties as Schema) : undefined;
    for (const [k, v] of Object.entries(value)) {
      const at = path ? `${path}.${k}` : k;
      if (properties) {
        if (properties[k]) out.push(...unknownFieldPaths(v, properties[k], all, at));
        else if (!additional) out.push(at);
        else out.push(...unknownFieldPaths(v, additional, all, at));
      } else if (additional) out.push(...unknownFieldPaths(v, additional, all, at));
      // an object with neither (FieldsV1, RawExtension) takes anything
    }
  }
  return out;
}

/** The unknown fields of an object of a served kind ([] for a kind with no schema). */
export function unknownFieldsOf(obj: { kind?: unknown; apiVersion?: unknown; [field: string]: unknown }): string[] {
  const rt = RESOURCES.find((r) => r.kind === obj.kind && (r.group ? `${r.group}/${r.version}` : r.version) === obj.apiVersion) ?? RESOURCES.find((r) => r.kind === obj.kind);
  if (!rt) return [];
  const all = schemas();
  const def = all[definitionOf(rt)];
  return def ? unknownFieldPaths(obj, def, all) : [];
}

/**
 * Checks an object about to be written: under Strict a 400 with upstream's message
 * (`Deployment in version "v1" cannot be handled as a Deployment: strict decoding error:
 * unknown field "spec.foo", ...`); under Warn the warning texts (`unknown field "spec.foo"`);
 * under Ignore nothing.
 */
export function checkFields(obj: { kind?: unknown; apiVersion?: unknown; [field: string]: unknown }, mode: FieldValidation): string[] {
  if (mode === 'Ignore' || !isObject(obj)) return [];
  const unknown = unknownFieldsOf(obj);
  if (!unknown.length) return [];
  const texts = unknown.map((f) => `unknown field ${JSON.stringify(f)}`);
  if (mode === 'Warn') return texts;
  const kind = String(obj.kind);
  const version = String(obj.apiVersion ?? '').split('/').pop();
  throw new StatusError(400, 'BadRequest', `${kind} in version ${JSON.stringify(version)} cannot be handled as a ${kind}: strict decoding error: ${texts.join(', ')}`);
}

/** A refused item of a kubewire apply: the Status names its index, as api.ts ApplyError does. */
export class ItemFieldError extends StatusError {
  constructor(readonly index: number, cause: StatusError) {
    super(cause.code, cause.reason, cause.message);
  }

  override toStatus(): object {
    return { ...super.toStatus(), details: { index: this.index } };
  }
}

/** checkFields for each object of a kubewire apply: warnings name their object (Deployment "web": ...), a Strict refusal its index. */
export function checkItems(items: Array<{ kind?: unknown; apiVersion?: unknown; metadata?: { name?: unknown } }>, mode: FieldValidation): string[] {
  return items.flatMap((o, index) => {
    try {
      return checkFields(o, mode).map((t) => `${String(o?.kind)} ${JSON.stringify(o?.metadata?.name ?? '')}: ${t}`);
    } catch (e) {
      throw e instanceof StatusError ? new ItemFieldError(index, e) : e;
    }
  });
}
