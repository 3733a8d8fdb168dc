// NBD wire format (newstyle fixed handshake, simple replies): pure encoders and
// constants, no I/O. Reference: the NBD protocol document, "proto.md".

export const NBDMAGIC = Buffer.from('NBDMAGIC');
export const IHAVEOPT = Buffer.from('IHAVEOPT');
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const REPLY_FLAG_DONE = 1;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_ERROR = (1 << 15) + 1;
export const REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

export const FLAG_FIXED_NEWSTYLE = 1;
export const FLAG_NO_ZEROES = 2;

export const OPT_ABORT = 2;
export const OPT_STARTTLS = 5;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_SET_META_CONTEXT = 10;
export const REP_ACK = 1;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
export const REP_FLAG_ERROR = 0x80000000;
export const INFO_EXPORT = 0;

export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_WRITE_ZEROES = 6;
export const CMD_BLOCK_STATUS = 7;
export const CMD_FLAG_FUA = 1;

export const TRANSMISSION_FLAG_READ_ONLY = 1 << 1;

export function encodeOption(option: number, data: Buffer): Buffer {
  const head = Buffer.alloc(16);
  IHAVEOPT.copy(head, 0);
  head.writeUInt32BE(option, 8);
  head.writeUInt32BE(data.length, 12);
  return Buffer.concat([head, data]);
}

/** NBD_OPT_GO for `name`, asking for no extra info (the server sends NBD_INFO_EXPORT anyway). */
export function encodeGo(name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const data = Buffer.alloc(4 + n.length + 2);
  data.writeUInt32BE(n.length, 0);
  n.copy(data, 4);
  data.writeUInt16BE(0, 4 + n.length);
  return encodeOption(OPT_GO, data);
}

/** NBD_OPT_SET_META_CONTEXT for `exportName` asking for each of `queries`. */
export function encodeSetMetaContext(exportName: string, queries: readonly string[]): Buffer {
  const n = Buffer.from(exportName, 'utf8');
  const qs = queries.map((q) => Buffer.from(q, 'utf8'));
  const data = Buffer.alloc(4 + n.length + 4 + qs.reduce((sum, q) => sum + 4 + q.length, 0));
  let o = data.writeUInt32BE(n.length, 0);
  o += n.copy(data, o);
  o = data.writeUInt32BE(qs.length, o);
  for (const q of qs) {
    o = data.writeUInt32BE(q.length, o);
    o += q.copy(data, o);
  }
  return encodeOption(OPT_SET_META_CONTEXT, data);
}

/** One extent of a block-status reply: `flags` is context-specific (for
 *  base:allocation bit 0 = hole, bit 1 = zero; for qemu:allocation-depth the
 *  layer depth, 0 = unallocated in the whole chain). */
export interface Extent {
  readonly offset: number;
  readonly length: number;
  readonly flags: number;
}

export function encodeRequest(type: number, flags: number, handle: bigint, offset: bigint, length: number, payload?: Buffer): Buffer {
  const head = Buffer.alloc(28);
  head.writeUInt32BE(REQUEST_MAGIC, 0);
  head.writeUInt16BE(flags, 4);
  head.writeUInt16BE(type, 6);
  head.writeBigUInt64BE(handle, 8);
  head.writeBigUInt64BE(offset, 16);
  head.writeUInt32BE(length, 24);
  return payload ? Buffer.concat([head, payload]) : head;
}

export class NbdError extends Error {
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super(message);
  }
}
