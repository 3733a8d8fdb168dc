// Splits a byte stream into lines for the JSON-per-line protocols (QMP, QGA).
// Pure: bytes in, events out. A line longer than the limit is reported once and
// dropped through its boundary, so one bad line never wedges the stream.

export const PREVIEW_CHARS = 200;

export type SplitEvent =
  /** A complete line, without its boundary byte. */
  | { readonly kind: 'line'; readonly bytes: Buffer; readonly boundary: number }
  /** A line grew past the limit before its boundary; it is being dropped. */
  | { readonly kind: 'overlong'; readonly preview: string }
  /** The boundary that ends a dropped line. */
  | { readonly kind: 'skipped'; readonly boundary: number };

export class LineSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private discarding = false;

  constructor(
    private readonly boundaries: readonly number[],
    private readonly maxLineBytes: number,
  ) {}

  /** Bytes held waiting for the end of a line. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  reset(): void {
    this.chunks = [];
    this.buffered = 0;
    this.discarding = false;
  }

  feed(chunk: Buffer): SplitEvent[] {
    const events: SplitEvent[] = [];
    let start = 0;
    for (;;) {
      const end = this.nextBoundary(chunk, start);
      if (end === -1) break;
      const piece = chunk.subarray(start, end);
      const boundary = chunk[end]!;
      start = end + 1;
      const bytes = this.buffered === 0 ? piece : Buffer.concat([...this.chunks, piece]);
      this.chunks = [];
      this.buffered = 0;
      if (this.discarding) {
        this.discarding = false;
        events.push({ kind: 'skipped', boundary });
      } else {
        events.push({ kind: 'line', bytes, boundary });
      }
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0 && !this.discarding) {
      if (this.buffered + rest.length > this.maxLineBytes) {
        const preview = Buffer.concat([...this.chunks, rest]).subarray(0, PREVIEW_CHARS).toString('utf8');
        events.push({ kind: 'overlong', preview });
        this.chunks = [];
        this.buffered = 0;
        this.discarding = true;
      } else {
        // Copy: the caller may reuse its buffer after feed() returns.
        this.chunks.push(Buffer.from(rest));
        this.buffered += rest.length;
      }
    }
    return events;
  }

  private nextBoundary(chunk: Buffer, from: number): number {
    if (this.boundaries.length === 1) return chunk.indexOf(this.boundaries[0]!, from);
    for (let i = from; i < chunk.length; i++) if (this.boundaries.includes(chunk[i]!)) return i;
    return -1;
  }
}
