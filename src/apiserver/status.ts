// Failures of the API, in one shape whichever side saw them: the store in process
// (StoreError) or a client over the socket (ApiError) both carry a Kubernetes Status's code
// and reason, and one set of predicates answers for both (as apimachinery's errors.IsNotFound).

export class StatusError extends Error {
  constructor(
    /** The HTTP status (404, 409...). */
    readonly code: number,
    /** The Status reason (NotFound, AlreadyExists, Conflict...). */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }

  toStatus(): object {
    return { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: this.message, reason: this.reason, code: this.code };
  }
}

export function isNotFound(e: unknown): boolean {
  return e instanceof StatusError && e.code === 404;
}

export function isAlreadyExists(e: unknown): boolean {
  return e instanceof StatusError && e.reason === 'AlreadyExists';
}

export function isConflict(e: unknown): boolean {
  return e instanceof StatusError && e.reason === 'Conflict';
}
