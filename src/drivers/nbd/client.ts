// A small NBD client: one connection, requests pipelined and matched to replies
// by handle. Enough for tests and for reading/writing volumes from a role.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  CMD_BLOCK_STATUS, CMD_DISC, CMD_FLAG_FUA, CMD_FLUSH, CMD_READ, CMD_WRITE, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO_EXPORT, IHAVEOPT, NBDMAGIC,
  NbdError, OPTION_REPLY_MAGIC, OPT_STARTTLS, OPT_STRUCTURED_REPLY, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET,
  REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE, REP_ACK, REP_FLAG_ERROR, REP_INFO, REP_META_CONTEXT, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC,
  TRANSMISSION_FLAG_READ_ONLY, encodeGo, encodeOption, encodeRequest, encodeSetMetaContext, type Extent,
} from './protocol.js';

interface Pending {
  /** Bytes a simple read reply carries; structured reads fill `buffer` instead. */
  readonly readLength: number;
  /** Read target for structured replies (chunks may arrive in any order). */
  readonly buffer?: Buffer;
  /** Offset of the request, to place structured read chunks. */
  readonly offset: number;
  /** Block-status extents per context id. */
  readonly extents?: Map<number, Extent[]>;
  error?: NbdError;
  resolve(data: Buffer): void;
  reject(err: Error): void;
}

export interface ConnectOptions {
  /** Metadata contexts to negotiate for block status (e.g. base:allocation,
   *  qemu:allocation-depth); implies structured replies. */
  readonly metaContexts?: readonly string[];
}

async function readOptionReply(reader: ByteReader): Promise<{ type: number; data: Buffer }> {
  const head = await reader.read(20);
  if (head.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new NbdError('bad option reply magic');
  const type = head.readUInt32BE(12);
  const len = head.readUInt32BE(16);
  return { type, data: len > 0 ? await reader.read(len) : Buffer.alloc(0) };
}

/** Buffers socket data and hands out exact byte counts, in order. */
class ByteReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    this.drain();
  }

  fail(err: Error): void {
    this.failed = err;
    this.waiter?.reject(err);
    this.waiter = null;
  }

  read(n: number): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.drain();
    });
  }

  /** Hands out exactly `n` bytes: a view of the first buffer when it holds them
   *  (the common case for headers), else one copy of just those bytes. Never
   *  concatenates the whole backlog: with several 1 MiB replies buffered that
   *  made every 4-byte header read cost megabytes of copying. */
  private drain(): void {
    if (!this.waiter || this.size < this.waiter.n) return;
    const { n, resolve } = this.waiter;
    this.waiter = null;
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0]!;
        const take = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, take);
        filled += take;
        if (take === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(take);
      }
    }
    this.size -= n;
    resolve(out);
  }
}

/** A TLS pre-shared key as QEMU's tls-creds-psk uses it: identity and raw key bytes. */
export interface TlsPsk {
  readonly identity: string;
  readonly key: Buffer;
}

function attachReader(socket: Socket): ByteReader {
  const reader = new ByteReader();
  socket.on('data', (c: Buffer) => reader.push(c));
  socket.on('error', (e) => reader.fail(e));
  socket.on('close', () => reader.fail(new NbdError('connection closed')));
  return reader;
}

async function connected(socket: Socket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
}

/** Newstyle greeting: the server's magic, then our flags (fixed newstyle, no zeroes). */
async function greet(socket: Socket, reader: ByteReader): Promise<void> {
  const hello = await reader.read(18);
  if (!hello.subarray(0, 8).equals(NBDMAGIC) || !hello.subarray(8, 16).equals(IHAVEOPT)) throw new NbdError('not a newstyle NBD server');
  const clientFlags = Buffer.alloc(4);
  clientFlags.writeUInt32BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
  socket.write(clientFlags);
}

export class NbdClient {
  private nextHandle = 1n;
  private readonly pending = new Map<bigint, Pending>();
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly reader: ByteReader,
    readonly size: number,
    readonly readOnly: boolean,
    /** Negotiated metadata contexts by name → id. */
    private readonly contexts: ReadonlyMap<string, number>,
  ) {}

  /** Connects over a unix socket and selects `exportName` with NBD_OPT_GO. */
  static async connectUnix(socketPath: string, exportName: string, opts: ConnectOptions = {}): Promise<NbdClient> {
    const socket = connect({ path: socketPath });
    const reader = attachReader(socket);
    await connected(socket);
    await greet(socket, reader);
    return NbdClient.selectExport(socket, reader, exportName, opts);
  }

  /** Connects over TCP, upgrades with NBD_OPT_STARTTLS to TLS-PSK (what the
   *  volume role's gateway serves to other hosts), then selects the export. */
  static async connectTls(host: string, port: number, exportName: string, psk: TlsPsk, opts: ConnectOptions = {}): Promise<NbdClient> {
    const plain = connect({ host, port });
    const preReader = new ByteReader();
    const onData = (c: Buffer) => preReader.push(c);
    const onError = (e: Error) => preReader.fail(e);
    plain.on('data', onData);
    plain.on('error', onError);
    await connected(plain);
    await greet(plain, preReader);
    plain.write(encodeOption(OPT_STARTTLS, Buffer.alloc(0)));
    const ack = await readOptionReply(preReader);
    if (ack.type !== REP_ACK) throw new NbdError('the server refused NBD_OPT_STARTTLS');
    plain.removeListener('data', onData);
    plain.removeListener('error', onError);
    // QEMU's PSK server speaks TLS 1.2 PSK suites; the key never leaves memory.
    const socket = tlsConnect({
      socket: plain,
      pskCallback: () => ({ identity: psk.identity, psk: psk.key }),
      ciphers: 'PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:PSK-CHACHA20-POLY1305',
      maxVersion: 'TLSv1.2',
      checkServerIdentity: () => undefined,
    });
    const reader = attachReader(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return NbdClient.selectExport(socket, reader, exportName, opts);
  }

  /** The option haggling after the greeting: structured replies and metadata
   *  contexts when asked for, then NBD_OPT_GO. */
  private static async selectExport(socket: Socket, reader: ByteReader, exportName: string, opts: ConnectOptions): Promise<NbdClient> {
    const contexts = new Map<string, number>();
    if (opts.metaContexts && opts.metaContexts.length > 0) {
      socket.write(encodeOption(OPT_STRUCTURED_REPLY, Buffer.alloc(0)));
      const sr = await readOptionReply(reader);
      if (sr.type !== REP_ACK) throw new NbdError('the server refused structured replies');
      socket.write(encodeSetMetaContext(exportName, opts.metaContexts));
      for (;;) {
        const r = await readOptionReply(reader);
        if (r.type & REP_FLAG_ERROR) throw new NbdError(`the server refused metadata contexts: ${r.data.toString('utf8')}`);
        if (r.type === REP_META_CONTEXT) contexts.set(r.data.subarray(4).toString('utf8'), r.data.readUInt32BE(0));
        if (r.type === REP_ACK) break;
      }
      for (const name of opts.metaContexts) if (!contexts.has(name)) throw new NbdError(`export ${exportName} does not offer metadata context ${name}`);
    }
    socket.write(encodeGo(exportName));
    let size = -1;
    let flags = 0;
    for (;;) {
      const { type, data } = await readOptionReply(reader);
      if (type & REP_FLAG_ERROR) throw new NbdError(`export ${exportName} refused: ${data.toString('utf8') || `error ${type}`}`);
      if (type === REP_INFO && data.readUInt16BE(0) === INFO_EXPORT) {
        size = Number(data.readBigUInt64BE(2));
        flags = data.readUInt16BE(10);
      }
      if (type === REP_ACK) break;
    }
    if (size < 0) throw new NbdError('server sent no export size');
    const client = new NbdClient(socket, reader, size, (flags & TRANSMISSION_FLAG_READ_ONLY) !== 0, contexts);
    void client.replyLoop();
    return client;
  }

  private async replyLoop(): Promise<void> {
    try {
      for (;;) {
        const magic = (await this.reader.read(4)).readUInt32BE(0);
        if (magic === SIMPLE_REPLY_MAGIC) await this.simpleReply();
        else if (magic === STRUCTURED_REPLY_MAGIC) await this.structuredChunk();
        else throw new NbdError(`bad reply magic 0x${magic.toString(16)}`);
      }
    } catch (err) {
      for (const p of this.pending.values()) p.reject(err as Error);
      this.pending.clear();
    }
  }

  private take(handle: bigint): Pending {
    const p = this.pending.get(handle);
    if (!p) throw new NbdError(`reply for unknown handle ${handle}`);
    return p;
  }

  private async simpleReply(): Promise<void> {
    const head = await this.reader.read(12);
    const errno = head.readUInt32BE(0);
    const handle = head.readBigUInt64BE(4);
    const p = this.take(handle);
    this.pending.delete(handle);
    if (errno !== 0) return p.reject(new NbdError(`NBD error ${errno}`, errno));
    p.resolve(p.readLength > 0 ? await this.reader.read(p.readLength) : Buffer.alloc(0));
  }

  /** One chunk of a structured reply; the request completes on the DONE flag. */
  private async structuredChunk(): Promise<void> {
    const head = await this.reader.read(16);
    const flags = head.readUInt16BE(0);
    const type = head.readUInt16BE(2);
    const handle = head.readBigUInt64BE(4);
    const length = head.readUInt32BE(12);
    const payload = length > 0 ? await this.reader.read(length) : Buffer.alloc(0);
    const p = this.take(handle);
    switch (type) {
      case REPLY_TYPE_OFFSET_DATA: {
        const at = Number(payload.readBigUInt64BE(0)) - p.offset;
        payload.copy(p.buffer!, at, 8);
        break;
      }
      case REPLY_TYPE_OFFSET_HOLE: {
        const at = Number(payload.readBigUInt64BE(0)) - p.offset;
        p.buffer!.fill(0, at, at + payload.readUInt32BE(8));
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
        break;
    }
    if (flags & REPLY_FLAG_DONE) {
      this.pending.delete(handle);
      if (p.error) p.reject(p.error);
      else p.resolve(p.buffer ?? Buffer.alloc(0));
    }
  }

  private request(type: number, flags: number, offset: number, length: number, payload?: Buffer, extra: Partial<Pick<Pending, 'readLength' | 'buffer' | 'extents'>> = {}): Promise<Buffer> {
    if (this.closed) return Promise.reject(new NbdError('client closed'));
    const handle = this.nextHandle++;
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { readLength: extra.readLength ?? 0, offset, resolve, reject, ...(extra.buffer ? { buffer: extra.buffer } : {}), ...(extra.extents ? { extents: extra.extents } : {}) });
      // The payload goes out as its own write after the 28-byte header: joining
      // them would copy every written MiB once more (and leave it for the GC).
      if (payload && payload.length > 0) {
        this.socket.cork();
        this.socket.write(encodeRequest(type, flags, handle, BigInt(offset), length));
        this.socket.write(payload);
        this.socket.uncork();
      } else {
        this.socket.write(encodeRequest(type, flags, handle, BigInt(offset), length, payload));
      }
    });
  }

  read(offset: number, length: number): Promise<Buffer> {
    // With structured replies the data may come in chunks (and holes); without,
    // as one simple reply of exactly `length` bytes.
    const structured = this.contexts.size > 0;
    return this.request(CMD_READ, 0, offset, length, undefined, structured ? { buffer: Buffer.alloc(length) } : { readLength: length });
  }

  /** `data` is sent as is (not copied): leave it unchanged until the returned promise settles. */
  async write(offset: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    await this.request(CMD_WRITE, opts.fua ? CMD_FLAG_FUA : 0, offset, data.length, data);
  }

  async flush(): Promise<void> {
    await this.request(CMD_FLUSH, 0, 0, 0);
  }

  /** Block status of [offset, offset+length) for one negotiated context. The
   *  server may describe less than asked; callers loop from the last extent's end. */
  async blockStatus(context: string, offset: number, length: number): Promise<Extent[]> {
    const id = this.contexts.get(context);
    if (id === undefined) throw new NbdError(`metadata context ${context} was not negotiated`);
    const extents = new Map<number, Extent[]>();
    await this.request(CMD_BLOCK_STATUS, 0, offset, Math.min(length, 0xffffffff), undefined, { extents });
    return extents.get(id) ?? [];
  }

  /** Every extent of the whole export for `context`, walking the export in calls. */
  async mapAll(context: string, step = 1 << 30): Promise<Extent[]> {
    const out: Extent[] = [];
    let offset = 0;
    while (offset < this.size) {
      const got = await this.blockStatus(context, offset, Math.min(step, this.size - offset));
      if (got.length === 0) throw new NbdError(`no block status at offset ${offset}`);
      for (const e of got) {
        const length = Math.min(e.length, this.size - e.offset);
        if (length > 0) out.push({ offset: e.offset, length, flags: e.flags });
      }
      offset = out[out.length - 1]!.offset + out[out.length - 1]!.length;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The server may already have dropped us (an export removed under us): then
    // there is nothing to say goodbye to and no 'close' event still to come.
    if (this.socket.destroyed || this.socket.closed) return;
    const gone = new Promise((r) => this.socket.once('close', r));
    this.socket.write(encodeRequest(CMD_DISC, 0, 0n, 0n, 0));
    this.socket.end();
    await gone;
  }

}
