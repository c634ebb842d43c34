// CNI error codes (SPEC.md "Error"), plus the ones libcni adds (8, 999).

export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  InvalidNetNS: 8,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode] | number;

/** An error as the spec prints it: {cniVersion, code, msg, details}. */
export class CniError extends Error {
  override name = 'CniError';
  constructor(
    readonly code: ErrorCodeValue,
    readonly msg: string,
    readonly details = '',
  ) {
    super(details ? `${msg}: ${details}` : msg);
  }

  toJSON(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.msg };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Wraps anything thrown into a CniError; unknown failures become code 999. */
export function asCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new CniError(ErrorCode.Internal, message);
}

/** Adds context to an error while keeping its code ("failed to set up veth: ..."). */
export function withContext(context: string, e: unknown): CniError {
  const err = asCniError(e);
  return new CniError(err.code, `${context}: ${err.msg}`, err.details);
}
