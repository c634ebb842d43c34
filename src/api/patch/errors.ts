// A patch that cannot be applied: the HTTP code and reason the API server answers with
// (400 BadRequest for a malformed patch, 422 Invalid for one that does not fit the object,
// 409 Conflict for server-side apply's field conflicts, 415 for a content type it cannot read).

export interface StatusCause {
  type?: string;
  reason?: string;
  message: string;
  field?: string;
}

export class PatchError extends Error {
  override name = 'PatchError';
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly causes?: StatusCause[],
  ) {
    super(message);
  }

  toStatus(): object {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, ...(this.causes ? { details: { causes: this.causes } } : {}), code: this.code };
  }
}

export const badRequest = (message: string) => new PatchError(400, 'BadRequest', message);
export const unprocessable = (message: string) => new PatchError(422, 'Invalid', message);

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
