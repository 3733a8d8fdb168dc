// A fixed pool of worker threads answering request messages in order. Each
// task goes to the worker with the fewest outstanding tasks. Idle workers are
// unref'd so a forgotten close() never keeps the process alive; a worker that
// dies fails only its own tasks and is replaced on the next request.
import { Worker } from 'node:worker_threads';

export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly objectKey?: string;
  readonly detail?: string;
}

type Reply<Res> = { readonly seq: number; readonly ok: true; readonly res: Res } | { readonly seq: number; readonly ok: false; readonly error: WireError };

interface Slot<Res> {
  worker: Worker;
  readonly pending: Map<number, { resolve: (r: Res) => void; reject: (e: Error) => void }>;
  dead: boolean;
}

export class WorkerPool<Req, Res> {
  private readonly slots: Slot<Res>[] = [];
  private seq = 0;
  private closed = false;

  constructor(
    private readonly script: URL,
    readonly size: number,
    private readonly workerData: unknown,
    private readonly revive: (e: WireError) => Error,
  ) {
    if (!(size >= 1)) throw new Error('a worker pool needs at least one worker');
  }

  run(req: Req, transfer: ArrayBuffer[]): Promise<Res> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    const slot = this.pick();
    const seq = ++this.seq;
    return new Promise<Res>((resolve, reject) => {
      slot.pending.set(seq, { resolve, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      slot.worker.postMessage({ seq, req }, transfer);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
    for (const s of slots) this.failAll(s, new Error('worker pool closed'));
  }

  private pick(): Slot<Res> {
    for (let i = 0; i < this.slots.length; i++) if (this.slots[i]!.dead) this.slots[i] = this.spawn();
    while (this.slots.length < this.size) this.slots.push(this.spawn());
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < best.pending.size) best = s;
    return best;
  }

  private spawn(): Slot<Res> {
    const worker = new Worker(this.script, { workerData: this.workerData });
    worker.unref();
    const slot: Slot<Res> = { worker, pending: new Map(), dead: false };
    worker.on('message', (reply: Reply<Res>) => {
      const p = slot.pending.get(reply.seq);
      if (!p) return;
      slot.pending.delete(reply.seq);
      if (slot.pending.size === 0) worker.unref();
      if (reply.ok) p.resolve(reply.res);
      else p.reject(this.revive(reply.error));
    });
    worker.on('error', (err) => {
      slot.dead = true;
      this.failAll(slot, err);
    });
    worker.on('exit', (code) => {
      slot.dead = true;
      this.failAll(slot, new Error(`worker thread exited with code ${code}`));
    });
    return slot;
  }

  private failAll(slot: Slot<Res>, err: Error): void {
    for (const p of slot.pending.values()) p.reject(err);
    slot.pending.clear();
  }
}

/** A Uint8Array that owns its whole ArrayBuffer, so transferring it detaches nothing else. */
export function owned(u8: Uint8Array): Uint8Array {
  if (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength && u8.buffer instanceof ArrayBuffer) return u8;
  return new Uint8Array(u8); // a copy (Buffer#slice would be a view)
}

/** The ArrayBuffer of an owned() array, for a transfer list. */
export function bufferOf(u8: Uint8Array): ArrayBuffer {
  if (!(u8.buffer instanceof ArrayBuffer)) throw new Error('cannot transfer a shared buffer');
  return u8.buffer;
}
