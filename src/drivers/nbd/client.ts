// A small NBD client: one connection, requests pipelined and matched to replies
// by handle. Enough for tests and for reading/writing volumes from a role.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  CMD_BLOCK_STATUS, CMD_DISC, CMD_FLAG_FUA, CMD_FLUSH, CMD_READ, CMD_WRITE, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO_EXPORT, IHAVEOPT, NBDMAGIC,
  NbdError, OPTION_REPLY_MAGIC, OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_FLAG_ERROR, REP_INFO, REP_META_CONTEXT,
  TRANSMISSION_FLAG_READ_ONLY, encodeGo, encodeOption, encodeRequest, encodeSetMetaContext, type Extent,
} from './protocol.js';
import { ReplyParser, type PendingReply } from './reply-parser.js';

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

/** Buffers socket data during the handshake and hands out exact byte counts, in order. */
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

  /** Whatever arrived past the handshake (normally nothing: the server speaks when asked). */
  takeRest(): Buffer {
    const rest = Buffer.concat(this.chunks);
    this.chunks = [];
    this.size = 0;
    return rest;
  }

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

/**
 * Everything the socket delivers: handshake bytes to the ByteReader, then
 * (once an export is selected) replies to the ReplyParser, which also picks
 * where each socket read lands when the socket reads through `onread`.
 */
class Inbound {
  readonly reader = new ByteReader();
  private parser: ReplyParser | null = null;
  private readonly staging = Buffer.allocUnsafe(16 * 1024);
  failure: Error | null = null;

  nextBuffer(): Buffer {
    return this.parser ? this.parser.nextBuffer() : this.staging;
  }

  /** onread's callback: `n` bytes landed in `buf`; true keeps the socket reading. */
  landed(buf: Uint8Array, n: number): boolean {
    if (this.parser) this.parser.landed(buf, n);
    else this.reader.push(Buffer.from(buf.subarray(0, n))); // a copy: `buf` is reused by the next read
    return true;
  }

  /** A 'data' event's chunk (TLS sockets, which have no onread). */
  data(chunk: Buffer): void {
    if (this.parser) this.parser.feed(chunk);
    else this.reader.push(chunk);
  }

  startTransmission(parser: ReplyParser): void {
    this.parser = parser;
    const rest = this.reader.takeRest();
    if (rest.length > 0) parser.feed(rest);
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.reader.fail(err);
    this.parser?.fail(err);
  }
}

/** A TLS pre-shared key as QEMU's tls-creds-psk uses it: identity and raw key bytes. */
export interface TlsPsk {
  readonly identity: string;
  readonly key: Buffer;
}

function attachInbound(socket: Socket): Inbound {
  const inbound = new Inbound();
  socket.on('data', (c: Buffer) => inbound.data(c));
  watchForFailure(socket, inbound);
  return inbound;
}

function watchForFailure(socket: Socket, inbound: Inbound): void {
  socket.on('error', (e) => inbound.fail(e));
  socket.on('close', () => inbound.fail(new NbdError('connection closed')));
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
  private readonly pending = new Map<bigint, PendingReply>();
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly inbound: Inbound,
    readonly size: number,
    readonly readOnly: boolean,
    /** Negotiated metadata contexts by name → id. */
    private readonly contexts: ReadonlyMap<string, number>,
  ) {}

  /** Connects over a unix socket and selects `exportName` with NBD_OPT_GO. */
  static async connectUnix(socketPath: string, exportName: string, opts: ConnectOptions = {}): Promise<NbdClient> {
    // `onread` with a buffer function: each socket read lands where the parser
    // says, read data straight in the caller's buffer. Without it every read
    // is a fresh 64 KiB buffer, copied again, and a GiB of reads is 16k
    // allocations and many collections of the whole heap on this thread.
    const inbound = new Inbound();
    const socket = connect({ path: socketPath, onread: { buffer: () => inbound.nextBuffer(), callback: (n: number, buf: Uint8Array) => inbound.landed(buf, n) } });
    watchForFailure(socket, inbound);
    await connected(socket);
    await greet(socket, inbound.reader);
    return NbdClient.selectExport(socket, inbound, exportName, opts);
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
    const inbound = attachInbound(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return NbdClient.selectExport(socket, inbound, exportName, opts);
  }

  /** The option haggling after the greeting: structured replies and metadata
   *  contexts when asked for, then NBD_OPT_GO. */
  private static async selectExport(socket: Socket, inbound: Inbound, exportName: string, opts: ConnectOptions): Promise<NbdClient> {
    const reader = inbound.reader;
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
    const client = new NbdClient(socket, inbound, size, (flags & TRANSMISSION_FLAG_READ_ONLY) !== 0, contexts);
    inbound.startTransmission(new ReplyParser(client.pending, (err) => socket.destroy(err)));
    return client;
  }

  private request(type: number, flags: number, offset: number, length: number, payload?: Buffer, extra: Partial<Pick<PendingReply, 'readLength' | 'buffer' | 'extents'>> = {}): Promise<Buffer> {
    if (this.closed) return Promise.reject(new NbdError('client closed'));
    if (this.inbound.failure) return Promise.reject(this.inbound.failure);
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

  /**
   * `length` bytes at `offset`. With `into` (at least `length` bytes) they are
   * read into it, and the result is a view of it: no allocation per read.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Buffer> {
    if (into && into.length < length) return Promise.reject(new RangeError(`read buffer of ${into.length} bytes for ${length}`));
    const target = into ? Buffer.from(into.buffer, into.byteOffset, length) : undefined;
    // With structured replies the data may come in chunks (and holes); without,
    // as one simple reply of exactly `length` bytes.
    if (this.contexts.size > 0) return this.request(CMD_READ, 0, offset, length, undefined, { buffer: target ? target.fill(0) : Buffer.alloc(length) });
    return this.request(CMD_READ, 0, offset, length, undefined, { readLength: length, ...(target ? { buffer: target } : {}) });
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
