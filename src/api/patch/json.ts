// JSON patch (RFC 6902), `kubectl patch --type=json`: applied by fast-json-patch. As the API
// server answers: a body that is not a list of operations is 400; an operation that does not
// apply (a failed test, a path that is not there) is 422, and nothing is changed. Pure.

import fjp from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { badRequest, unprocessable } from './errors.ts';

export function jsonPatch(original: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw badRequest(`a JSON patch must be a list of operations ([{"op": "replace", "path": "/spec/replicas", "value": 3}]), not ${JSON.stringify(patch)?.slice(0, 80)}`);
  patch.forEach((op, i) => {
    if (typeof op !== 'object' || op === null || Array.isArray(op)) throw badRequest(`JSON patch operation ${i}: an operation is an object with op and path, not ${JSON.stringify(op)}`);
  });
  try {
    return fjp.applyPatch(structuredClone(original), patch as Operation[], true, true, true).newDocument;
  } catch (e) {
    if (e instanceof fjp.JsonPatchError) {
      const op = e.operation as { op?: string; path?: string } | undefined;
      const what = op ? `${op.op ?? '?'} ${op.path ?? ''}`.trim() : '';
      const why = e.name === 'TEST_OPERATION_FAILED' ? 'test failed: the value is not the one given' : e.message.split('\n')[0];
      throw unprocessable(`JSON patch operation ${e.index ?? '?'}${what ? ` (${what})` : ''}: ${why}`);
    }
    throw unprocessable(`JSON patch: ${(e as Error).message}`);
  }
}
