// A small NBD client: one connection, requests pipelined and matched to replies
// by handle. Enough for tests and for reading/writing volumes from a role.
import { connect, type Socket } from 'node:net';
import {
  CMD_DISC, CMD_FLAG_FUA, CMD_FLUSH, CMD_READ, CMD_WRITE, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO_EXPORT, IHAVEOPT, NBDMAGIC,
  NbdError, OPTION_REPLY_MAGIC, REP_ACK, REP_FLAG_ERROR, REP_INFO, SIMPLE_REPLY_MAGIC, TRANSMISSION_FLAG_READ_ONLY, encodeGo, encodeRequest,
} from './protocol.js';

interface Pending {
  readonly readLength: number;
  resolve(data: Buffer): void;
  reject(err: Error): void;
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

  private drain(): void {
    if (!this.waiter || this.size < this.waiter.n) return;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const { n, resolve } = this.waiter;
    this.waiter = null;
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    resolve(Buffer.from(out));
  }
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
  ) {}

  /** Connects over a unix socket and selects `exportName` with NBD_OPT_GO. */
  static async connectUnix(socketPath: string, exportName: string): Promise<NbdClient> {
    const socket = connect({ path: socketPath });
    const reader = new ByteReader();
    socket.on('data', (c: Buffer) => reader.push(c));
    socket.on('error', (e) => reader.fail(e));
    socket.on('close', () => reader.fail(new NbdError('connection closed')));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const hello = await reader.read(18);
    if (!hello.subarray(0, 8).equals(NBDMAGIC) || !hello.subarray(8, 16).equals(IHAVEOPT)) throw new NbdError('not a newstyle NBD server');
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    socket.write(clientFlags);
    socket.write(encodeGo(exportName));
    let size = -1;
    let flags = 0;
    for (;;) {
      const head = await reader.read(20);
      if (head.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new NbdError('bad option reply magic');
      const type = head.readUInt32BE(12);
      const len = head.readUInt32BE(16);
      const data = len > 0 ? await reader.read(len) : Buffer.alloc(0);
      if (type & REP_FLAG_ERROR) throw new NbdError(`export ${exportName} refused: ${data.toString('utf8') || `error ${type}`}`);
      if (type === REP_INFO && data.readUInt16BE(0) === INFO_EXPORT) {
        size = Number(data.readBigUInt64BE(2));
        flags = data.readUInt16BE(10);
      }
      if (type === REP_ACK) break;
    }
    if (size < 0) throw new NbdError('server sent no export size');
    const client = new NbdClient(socket, reader, size, (flags & TRANSMISSION_FLAG_READ_ONLY) !== 0);
    void client.replyLoop();
    return client;
  }

  private async replyLoop(): Promise<void> {
    try {
      for (;;) {
        const head = await this.reader.read(16);
        if (head.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new NbdError('bad reply magic');
        const errno = head.readUInt32BE(4);
        const handle = head.readBigUInt64BE(8);
        const p = this.pending.get(handle);
        if (!p) throw new NbdError(`reply for unknown handle ${handle}`);
        this.pending.delete(handle);
        if (errno !== 0) {
          p.reject(new NbdError(`NBD error ${errno}`, errno));
          continue;
        }
        p.resolve(p.readLength > 0 ? await this.reader.read(p.readLength) : Buffer.alloc(0));
      }
    } catch (err) {
      for (const p of this.pending.values()) p.reject(err as Error);
      this.pending.clear();
    }
  }

  private request(type: number, flags: number, offset: number, length: number, payload?: Buffer, readLength = 0): Promise<Buffer> {
    if (this.closed) return Promise.reject(new NbdError('client closed'));
    const handle = this.nextHandle++;
    return new Promise((resolve, reject) => {
      this.pending.set(handle, { readLength, resolve, reject });
      this.socket.write(encodeRequest(type, flags, handle, BigInt(offset), length, payload));
    });
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.request(CMD_READ, 0, offset, length, undefined, length);
  }

  async write(offset: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    await this.request(CMD_WRITE, opts.fua ? CMD_FLAG_FUA : 0, offset, data.length, data);
  }

  async flush(): Promise<void> {
    await this.request(CMD_FLUSH, 0, 0, 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.socket.write(encodeRequest(CMD_DISC, 0, 0n, 0n, 0));
    this.socket.end();
    await new Promise((r) => this.socket.once('close', r));
  }
}
