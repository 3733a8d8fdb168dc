// OpenStack's error document, {"error": {"code", "message", "title"}}: keystone
// uses it for all its errors and keystonemiddleware for the 401 it sends in
// front of Cinder, so both the identity routes and context.ts build it here.

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
};

export interface OpenStackErrorBody {
  error: { code: number; message: string; title: string };
}

/** Keystone and keystonemiddleware both say exactly this on a 401. */
export const UNAUTHORIZED_MESSAGE = 'The request you have made requires authentication.';

export function openstackErrorBody(code: number, message: string): OpenStackErrorBody {
  return { error: { code, message, title: TITLES[code] ?? 'Error' } };
}

/** Thrown inside the identity routes; the plugin's error handler renders it. */
export class KeystoneError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'KeystoneError';
  }
}

// Keystone hides why authentication failed (bad user, password, project or
// role all read the same) so the API cannot be used to enumerate accounts.
export function unauthorized(): KeystoneError {
  return new KeystoneError(401, UNAUTHORIZED_MESSAGE);
}

export function forbidden(action: string): KeystoneError {
  return new KeystoneError(403, `You are not authorized to perform the requested action: ${action}.`);
}

export function notFound(kind: string, id: string): KeystoneError {
  return new KeystoneError(404, `Could not find ${kind}: ${id}.`);
}

export function badRequest(message: string): KeystoneError {
  return new KeystoneError(400, message);
}
