// QEMU guest agent wire framing. The agent writes one JSON object per line
// ("\n" terminated). Two things set it apart from QMP:
// - guest-sync-delimited's reply is preceded by a single 0xFF byte. 0xFF never
//   occurs in UTF-8, so it is a hard delimiter: whatever part of a line came
//   before it is junk (left over from an earlier client or a confused stream)
//   and is discarded, reported as an invalid frame.
// - The 0xFF byte a client sends to reset the agent's parser is answered with
//   an ordinary error line ("JSON parse error, stray '\uFFFD'"), which this
//   layer cannot tell from any other error. The connection drops it because it
//   drops everything until its own sync reply.
// Splitting happens on raw bytes before UTF-8 decoding, so a multi-byte
// character cut across two chunks is never mangled.
import type { JsonValue, JsonObject } from '../qmp/framer.js';
import { LineSplitter, PREVIEW_CHARS } from '../line-splitter.js';

export type { JsonValue, JsonObject };

export interface QgaReturnMessage {
  kind: 'return';
  return: JsonValue;
  /** qemu-ga 7.2 echoes a request's "id"; replies to unparseable input carry none. */
  id: JsonValue | undefined;
}

export interface QgaErrorMessage {
  kind: 'error';
  error: { class: string; desc: string };
  id: JsonValue | undefined;
}

/** The agent's 0xFF byte (only ever written just before a guest-sync-delimited reply). */
export interface QgaDelimiterFrame {
  kind: 'delimiter';
}

/** A line that is not valid JSON or not a recognisable agent reply; reported, never thrown. */
export interface QgaInvalidFrame {
  kind: 'invalid';
  reason: string;
  /** The offending line, truncated so a huge garbage line cannot bloat logs. */
  line: string;
}

export type QgaMessage = QgaReturnMessage | QgaErrorMessage;
export type QgaFrame = QgaMessage | QgaDelimiterFrame | QgaInvalidFrame;

export const QGA_DELIMITER = 0xff;
const NEWLINE = 0x0a;
/** guest-info is about 4 KiB; guest-file-read replies are bounded by the caller's count. */
const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function preview(line: string): string {
  return line.length > PREVIEW_CHARS ? `${line.slice(0, PREVIEW_CHARS)}…` : line;
}

function invalid(reason: string, line: string): QgaInvalidFrame {
  return { kind: 'invalid', reason, line: preview(line) };
}

/** Classifies one parsed JSON value as an agent reply. Exported for tests. */
export function classifyQgaMessage(value: JsonValue, line: string): QgaFrame {
  if (!isObject(value)) return invalid('agent message is not a JSON object', line);
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
  return invalid('unrecognised agent message (no error/return member)', line);
}

export interface QgaFramerOptions {
  maxLineBytes?: number;
}

export class QgaFramer {
  private readonly splitter: LineSplitter;
  private readonly maxLineBytes: number;

  constructor(opts: QgaFramerOptions = {}) {
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    // The agent's 0xFF resync byte ends whatever partial line came before it.
    this.splitter = new LineSplitter([NEWLINE, QGA_DELIMITER], this.maxLineBytes);
  }

  /** Bytes held waiting for the end of a line. */
  get bufferedBytes(): number {
    return this.splitter.bufferedBytes;
  }

  reset(): void {
    this.splitter.reset();
  }

  /** Consumes a chunk; returns every frame it completed, in order. */
  feed(chunk: Buffer): QgaFrame[] {
    const frames: QgaFrame[] = [];
    for (const e of this.splitter.feed(chunk)) {
      if (e.kind === 'overlong') {
        frames.push(invalid(`line exceeds ${this.maxLineBytes} bytes`, e.preview));
        continue;
      }
      const atDelimiter = e.boundary === QGA_DELIMITER;
      if (e.kind === 'line') {
        if (atDelimiter) {
          const junk = e.bytes.toString('utf8');
          if (junk.trim() !== '') frames.push(invalid('partial line discarded at a 0xFF delimiter', junk));
        } else if (e.bytes.length > this.maxLineBytes) {
          frames.push(invalid(`line exceeds ${this.maxLineBytes} bytes`, e.bytes.subarray(0, PREVIEW_CHARS).toString('utf8')));
        } else {
          const frame = parseLine(e.bytes.toString('utf8'));
          if (frame) frames.push(frame);
        }
      }
      if (atDelimiter) frames.push({ kind: 'delimiter' });
    }
    return frames;
  }
}


function parseLine(raw: string): QgaFrame | null {
  const line = raw.trim();
  if (line === '') return null;
  let value: JsonValue;
  try {
    value = JSON.parse(line) as JsonValue;
  } catch (e) {
    return invalid(`invalid JSON: ${e instanceof Error ? e.message : String(e)}`, line);
  }
  return classifyQgaMessage(value, line);
}
