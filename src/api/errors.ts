// One error catalogue for the whole API, rendered in Cinder's fault shape:
// {"<faultName>": {"code": N, "message": "..."}}. Handlers throw ApiError; nothing
// else decides a status code.

export type FaultName =
  | 'badRequest'
  | 'unauthorized'
  | 'forbidden'
  | 'itemNotFound'
  | 'badMethod'
  | 'notAcceptable'
  | 'conflictingRequest'
  | 'overLimit'
  | 'badMediaType'
  | 'notImplemented'
  | 'computeFault'
  | 'serviceUnavailable';

const faultByStatus: Record<number, FaultName> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  406: 'notAcceptable',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  500: 'computeFault',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get fault(): FaultName {
    return faultByStatus[this.status] ?? (this.status >= 500 ? 'computeFault' : 'badRequest');
  }

  toBody(): Record<string, { code: number; message: string }> {
    return { [this.fault]: { code: this.status, message: this.message } };
  }
}

export const badRequest = (message: string) => new ApiError(400, message);
export const forbidden = (message = 'Policy does not allow this action.') => new ApiError(403, message);
export const notFound = (message: string) => new ApiError(404, message);
export const conflict = (message: string) => new ApiError(409, message);

/** Cinder answers quota overruns with 413 and a Retry-After of 0. */
export const overQuota = (message: string) => new ApiError(413, message, { 'Retry-After': '0' });

export const invalidVolume = (reason: string) => badRequest(`Invalid volume: ${reason}`);
export const invalidSnapshot = (reason: string) => badRequest(`Invalid snapshot: ${reason}`);
export const invalidInput = (reason: string) => badRequest(`Invalid input received: ${reason}`);
