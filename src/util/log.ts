// Structured logging through pino (fastify's own logger), one instance per role.
// Secrets never reach it: callers log ids and sizes, never keys or passwords.
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(name: string, level: string): Logger {
  return pino({ name, level, base: { role: name, pid: process.pid } });
}
