// Transmission-phase replies, parsed as bytes arrive (a push parser, no
// awaits between a header and its payload). Because the parser always knows
// what it is reading, it can say where the next socket read should land:
// while a read reply's data is outstanding, that is the caller's own buffer,
// so the kernel copies the payload straight into it (net.Socket `onread` with
// a buffer function). Headers, and whatever arrives with them, go through a
// small staging buffer and are copied. The same parser takes plain chunks
// ('data' events: TLS) with feed().
import {
  NbdError, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE,
  SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, type Extent,
} from './protocol.js';

export interface PendingReply {
  /** Bytes a simple read reply carries (0: not a read, or structured). */
  readonly readLength: number;
  /** Where read data goes: the caller's buffer, else allocated on the reply. */
  buffer?: Buffer;
  /** Offset of the request, to place structured read chunks. */
  readonly offset: number;
  /** Block-status extents per context id. */
  readonly extents?: Map<number, Extent[]>;
  error?: NbdError;
  resolve(data: Buffer): void;
  reject(err: Error): void;
}

const SIMPLE_HEAD = 16; // magic, errno, handle
const STRUCTURED_HEAD = 20; // magic, flags, type, handle, length
const STAGING = 16 * 1024;
/** Non-data structured payloads (block status, errors) are small; a larger one is a broken server. */
const MAX_META_PAYLOAD = 64 * 1024 * 1024;

type Phase =
  | { readonly kind: 'head' }
  /** A payload read whole into `buf` before it is interpreted. */
  | { readonly kind: 'payload'; readonly buf: Buffer; fill: number; readonly done: (payload: Buffer) => void }
  /** Read data going to `target[at, end)`. */
  | { readonly kind: 'data'; readonly target: Buffer; at: number; readonly end: number; readonly done: () => void };

export class ReplyParser {
  private readonly head = Buffer.alloc(STRUCTURED_HEAD);
  private headFill = 0;
  private phase: Phase = { kind: 'head' };
  private readonly staging = Buffer.allocUnsafe(STAGING);
  /** The region nextBuffer() last handed out for a direct read, to recognise it in landed(). */
  private direct: Buffer | null = null;
  private failed: Error | null = null;

  constructor(
    private readonly pending: Map<bigint, PendingReply>,
    private readonly onFatal: (err: Error) => void,
  ) {}

  /** Where the next socket read should go: the outstanding read data's destination, or staging. */
  nextBuffer(): Buffer {
    const p = this.phase;
    if (p.kind === 'data' && !this.failed) {
      this.direct = p.target.subarray(p.at, p.end);
      return this.direct;
    }
    this.direct = null;
    return this.staging;
  }

  /** `n` bytes were read into `buf`, a buffer nextBuffer() returned (or staging). */
  landed(buf: Uint8Array, n: number): void {
    const p = this.phase;
    if (buf === this.direct && p.kind === 'data') {
      this.direct = null;
      p.at += n;
      if (p.at === p.end) this.finishData(p);
      return;
    }
    this.feed(Buffer.from(buf.buffer, buf.byteOffset, n));
  }

  /** Bytes the caller may not keep: everything is copied out before this returns. */
  feed(chunk: Buffer): void {
    let i = 0;
    try {
      while (i < chunk.length && !this.failed) {
        const p = this.phase;
        if (p.kind === 'data') {
          const n = Math.min(p.end - p.at, chunk.length - i);
          chunk.copy(p.target, p.at, i, i + n);
          p.at += n;
          i += n;
          if (p.at === p.end) this.finishData(p);
        } else if (p.kind === 'payload') {
          const n = Math.min(p.buf.length - p.fill, chunk.length - i);
          chunk.copy(p.buf, p.fill, i, i + n);
          p.fill += n;
          i += n;
          if (p.fill === p.buf.length) {
            this.phase = { kind: 'head' };
            p.done(p.buf);
          }
        } else {
          const want = this.headFill < 4 ? 4 : this.headLength();
          const n = Math.min(want - this.headFill, chunk.length - i);
          chunk.copy(this.head, this.headFill, i, i + n);
          this.headFill += n;
          i += n;
          if (this.headFill === want && want > 4) this.onHead();
        }
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.onFatal(err);
  }

  private headLength(): number {
    const magic = this.head.readUInt32BE(0);
    if (magic === SIMPLE_REPLY_MAGIC) return SIMPLE_HEAD;
    if (magic === STRUCTURED_REPLY_MAGIC) return STRUCTURED_HEAD;
    throw new NbdError(`bad reply magic 0x${magic.toString(16)}`);
  }

  private take(handle: bigint): PendingReply {
    const p = this.pending.get(handle);
    if (!p) throw new NbdError(`reply for unknown handle ${handle}`);
    return p;
  }

  private onHead(): void {
    const h = this.head;
    this.headFill = 0;
    if (h.readUInt32BE(0) === SIMPLE_REPLY_MAGIC) return this.simpleHead(h.readUInt32BE(4), h.readBigUInt64BE(8));
    this.structuredHead(h.readUInt16BE(4), h.readUInt16BE(6), h.readBigUInt64BE(8), h.readUInt32BE(16));
  }

  private simpleHead(errno: number, handle: bigint): void {
    const p = this.take(handle);
    if (errno !== 0) {
      this.pending.delete(handle);
      return p.reject(new NbdError(`NBD error ${errno}`, errno));
    }
    if (p.readLength === 0) {
      this.pending.delete(handle);
      return p.resolve(Buffer.alloc(0));
    }
    const target = p.buffer ?? Buffer.allocUnsafe(p.readLength);
    this.phase = {
      kind: 'data',
      target,
      at: 0,
      end: p.readLength,
      done: () => {
        this.pending.delete(handle);
        p.resolve(target.subarray(0, p.readLength));
      },
    };
  }

  private structuredHead(flags: number, type: number, handle: bigint, length: number): void {
    const p = this.take(handle);
    const finish = () => {
      if (!(flags & REPLY_FLAG_DONE)) return;
      this.pending.delete(handle);
      if (p.error) p.reject(p.error);
      else p.resolve(p.buffer ?? Buffer.alloc(0));
    };
    if (type === REPLY_TYPE_OFFSET_DATA) {
      if (length < 8 || !p.buffer) throw new NbdError(`unexpected data chunk (${length} bytes) for handle ${handle}`);
      // The 8-byte offset first, then the data straight to its place in the caller's buffer.
      return this.expectPayload(8, (prefix) => {
        const at = Number(prefix.readBigUInt64BE(0)) - p.offset;
        const n = length - 8;
        if (at < 0 || at + n > p.buffer!.length) throw new NbdError(`data chunk outside the request (at ${at}, ${n} bytes)`);
        if (n === 0) return finish();
        this.phase = { kind: 'data', target: p.buffer!, at, end: at + n, done: finish };
      });
    }
    if (length > MAX_META_PAYLOAD) throw new NbdError(`structured reply payload of ${length} bytes`);
    this.expectPayload(length, (payload) => {
      this.structuredPayload(p, type, payload);
      finish();
    });
  }

  private expectPayload(length: number, done: (payload: Buffer) => void): void {
    if (length === 0) return done(Buffer.alloc(0));
    this.phase = { kind: 'payload', buf: Buffer.allocUnsafe(length), fill: 0, done };
  }

  private structuredPayload(p: PendingReply, type: number, payload: Buffer): void {
    switch (type) {
      case REPLY_TYPE_OFFSET_HOLE: {
        if (!p.buffer || payload.length < 12) throw new NbdError('unexpected hole chunk');
        const at = Number(payload.readBigUInt64BE(0)) - p.offset;
        const n = payload.readUInt32BE(8);
        if (at < 0 || at + n > p.buffer.length) throw new NbdError(`hole chunk outside the request (at ${at}, ${n} bytes)`);
        p.buffer.fill(0, at, at + n);
        break;
      }
      case REPLY_TYPE_BLOCK_STATUS: {
        const id = payload.readUInt32BE(0);
        const list = p.extents?.get(id) ?? [];
        let offset = list.reduce((end, e) => Math.max(end, e.offset + e.length), p.offset);
        for (let i = 4; i + 8 <= payload.length; i += 8) {
          const len = payload.readUInt32BE(i);
          list.push({ offset, length: len, flags: payload.readUInt32BE(i + 4) });
          offset += len;
        }
        p.extents?.set(id, list);
        break;
      }
      case REPLY_TYPE_ERROR:
      case REPLY_TYPE_ERROR_OFFSET: {
        const errno = payload.readUInt32BE(0);
        const msgLen = payload.readUInt16BE(4);
        p.error = new NbdError(`NBD error ${errno}: ${payload.subarray(6, 6 + msgLen).toString('utf8')}`, errno);
        break;
      }
      default:
        break; // REPLY_TYPE_NONE, or a type we did not ask for: nothing to record
    }
  }

  private finishData(p: Extract<Phase, { kind: 'data' }>): void {
    this.phase = { kind: 'head' };
    p.done();
  }
}
