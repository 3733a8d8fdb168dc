// HTTP behaviour every Bulwark API server shares, installed on the root fastify
// instance: errors in Cinder's fault shape, empty JSON bodies accepted (OpenStack
// clients send the header on bodiless DELETEs), unknown routes as itemNotFound.
import type { FastifyError, FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';

export function installApiBehaviour(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    if (err instanceof ApiError) {
      return reply.code(err.status).headers(err.headers).send(err.toBody());
    }
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'unhandled error');
    const message = status === 500 ? 'The server has either erred or is incapable of performing the requested operation.' : err.message;
    return reply.code(status).send(new ApiError(status, message).toBody());
  });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
    const raw = typeof text === 'string' ? text : text.toString('utf8');
    if (raw.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(raw));
    } catch {
      done(new ApiError(400, 'Malformed request body: the body is not valid JSON.'), undefined);
    }
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(new ApiError(404, 'The resource could not be found.').toBody()));
}
