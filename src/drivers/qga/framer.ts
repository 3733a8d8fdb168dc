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
import { LineSplitter, PREVIEW_CHARS } from '../line-splitter.js';
import { classifyReply, invalidFrame as invalid, isObject, parseJsonLine, type ErrorFrame, type InvalidFrame, type JsonObject, type JsonValue, type ReturnFrame } from '../json-line.js';

export type { JsonValue, JsonObject };

/** qemu-ga 7.2 echoes a request's "id"; replies to unparseable input carry none. */
export type QgaReturnMessage = ReturnFrame;

export type QgaErrorMessage = ErrorFrame;

/** The agent's 0xFF byte (only ever written just before a guest-sync-delimited reply). */
export interface QgaDelimiterFrame {
  kind: 'delimiter';
}

/** A line that is not valid JSON or not a recognisable agent reply; reported, never thrown. */
export type QgaInvalidFrame = InvalidFrame;

export type QgaMessage = QgaReturnMessage | QgaErrorMessage;
export type QgaFrame = QgaMessage | QgaDelimiterFrame | QgaInvalidFrame;

export const QGA_DELIMITER = 0xff;
const NEWLINE = 0x0a;
/** guest-info is about 4 KiB; guest-file-read replies are bounded by the caller's count. */
const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Classifies one parsed JSON value as an agent reply. Exported for tests. */
export function classifyQgaMessage(value: JsonValue, line: string): QgaFrame {
  if (!isObject(value)) return invalid('agent message is not a JSON object', line);
  const reply = classifyReply(value);
  if (reply) return reply;
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
  return parseJsonLine(raw, classifyQgaMessage);
}
