// QMP wire framing. QEMU writes one JSON object per line ("\r\n" terminated);
// the socket delivers arbitrary chunks, so bytes are buffered until a newline.
// Splitting happens on raw bytes, before UTF-8 decoding, so a multi-byte
// character cut across two chunks is never mangled.
import { LineSplitter, PREVIEW_CHARS } from '../line-splitter.js';
import { classifyReply, invalidFrame as invalid, isObject, parseJsonLine, type ErrorFrame, type InvalidFrame, type JsonObject, type JsonValue, type ReturnFrame } from '../json-line.js';

export type { JsonObject, JsonValue };

/** Whatever the client put in "id"; QEMU echoes it back verbatim. */
export type QmpId = JsonValue;

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpGreetingMessage {
  kind: 'greeting';
  QMP: { version: QmpVersion; capabilities: string[] };
}

export type QmpReturnMessage = ReturnFrame;

export type QmpErrorMessage = ErrorFrame;

export interface QmpEventMessage {
  kind: 'event';
  event: string;
  data: JsonObject;
  timestamp: { seconds: number; microseconds: number };
}

export type QmpMessage = QmpGreetingMessage | QmpReturnMessage | QmpErrorMessage | QmpEventMessage;

/** A line that is not valid JSON or not a recognisable QMP message; reported, never thrown. */
export type QmpInvalidFrame = InvalidFrame;

export type QmpFrame = QmpMessage | QmpInvalidFrame;

const NEWLINE = 0x0a;
/** query-named-block-nodes on a large pool can be megabytes; 64 MiB is far beyond that. */
const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

function toVersion(v: JsonValue | undefined): QmpVersion {
  const q = isObject(v) && isObject(v['qemu']) ? v['qemu'] : {};
  const num = (x: JsonValue | undefined): number => (typeof x === 'number' ? x : 0);
  return {
    qemu: { major: num(q['major']), minor: num(q['minor']), micro: num(q['micro']) },
    package: isObject(v) && typeof v['package'] === 'string' ? v['package'] : '',
  };
}

/** Classifies one parsed JSON value as a QMP message. Exported for tests. */
export function classifyQmpMessage(value: JsonValue, line: string): QmpFrame {
  if (!isObject(value)) return invalid('QMP message is not a JSON object', line);
  const greeting = value['QMP'];
  if (isObject(greeting)) {
    const caps = Array.isArray(greeting['capabilities'])
      ? greeting['capabilities'].filter((c): c is string => typeof c === 'string')
      : [];
    return { kind: 'greeting', QMP: { version: toVersion(greeting['version']), capabilities: caps } };
  }

  if (typeof value['event'] === 'string') {
    const ts = value['timestamp'];
    const seconds = isObject(ts) && typeof ts['seconds'] === 'number' ? ts['seconds'] : 0;
    const microseconds = isObject(ts) && typeof ts['microseconds'] === 'number' ? ts['microseconds'] : 0;
    const data = value['data'];
    return { kind: 'event', event: value['event'], data: isObject(data) ? data : {}, timestamp: { seconds, microseconds } };
  }

  const reply = classifyReply(value);
  if (reply) return reply;

  return invalid('unrecognised QMP message (no QMP/event/error/return member)', line);
}

export interface QmpFramerOptions {
  maxLineBytes?: number;
}

export class QmpFramer {
  private readonly splitter: LineSplitter;
  private readonly maxLineBytes: number;

  constructor(opts: QmpFramerOptions = {}) {
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.splitter = new LineSplitter([NEWLINE], this.maxLineBytes);
  }

  /** Bytes held waiting for the end of a line. */
  get bufferedBytes(): number {
    return this.splitter.bufferedBytes;
  }

  reset(): void {
    this.splitter.reset();
  }

  /** Consumes a chunk; returns every frame it completed, in order. */
  feed(chunk: Buffer): QmpFrame[] {
    const frames: QmpFrame[] = [];
    for (const e of this.splitter.feed(chunk)) {
      if (e.kind === 'overlong') frames.push(invalid(`line exceeds ${this.maxLineBytes} bytes`, e.preview));
      if (e.kind !== 'line') continue;
      if (e.bytes.length > this.maxLineBytes) {
        frames.push(invalid(`line exceeds ${this.maxLineBytes} bytes`, e.bytes.subarray(0, PREVIEW_CHARS).toString('utf8')));
        continue;
      }
      const frame = this.parseLine(e.bytes.toString('utf8'));
      if (frame) frames.push(frame);
    }
    return frames;
  }

  private parseLine(raw: string): QmpFrame | null {
    return parseJsonLine(raw, classifyQmpMessage);
  }

}
