// What the JSON-per-line protocols (QMP, the guest agent) share above the line
// splitter: JSON types, parsing one line, and the error/return reply shapes
// both QEMU daemons use. Pure; bad input becomes an invalid frame, never a throw.
import { PREVIEW_CHARS } from './line-splitter.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export interface InvalidFrame {
  kind: 'invalid';
  reason: string;
  /** The offending line, truncated so a huge garbage line cannot bloat logs. */
  line: string;
}

export interface ReturnFrame {
  kind: 'return';
  return: JsonValue;
  id: JsonValue | undefined;
}

export interface ErrorFrame {
  kind: 'error';
  error: { class: string; desc: string };
  id: JsonValue | undefined;
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function invalidFrame(reason: string, line: string): InvalidFrame {
  return { kind: 'invalid', reason, line: line.length > PREVIEW_CHARS ? `${line.slice(0, PREVIEW_CHARS)}…` : line };
}

/** An {"error": ...} or {"return": ...} reply, or null when the object is neither. */
export function classifyReply(value: JsonObject): ReturnFrame | ErrorFrame | null {
  const id = 'id' in value ? value['id'] : undefined;
  const err = value['error'];
  if (isObject(err)) {
    const cls = typeof err['class'] === 'string' ? err['class'] : 'GenericError';
    const desc = typeof err['desc'] === 'string' ? err['desc'] : '';
    return { kind: 'error', error: { class: cls, desc }, id };
  }
  if ('return' in value) {
    const ret = value['return'];
    return { kind: 'return', return: ret === undefined ? null : ret, id };
  }
  return null;
}

/** Parses one line and classifies it; blank lines give null. */
export function parseJsonLine<F>(raw: string, classify: (value: JsonValue, line: string) => F): F | InvalidFrame | null {
  const line = raw.trim();
  if (line === '') return null;
  let value: JsonValue;
  try {
    value = JSON.parse(line) as JsonValue;
  } catch (e) {
    return invalidFrame(`invalid JSON: ${e instanceof Error ? e.message : String(e)}`, line);
  }
  return classify(value, line);
}
