// Splits a byte stream into PostgreSQL protocol frames without copying them: a frame is a view
// (buffer + offsets) into the chunk it arrived in. Leftover bytes of a partial frame are kept for
// the next chunk, as node-postgres' pg-protocol parser does.
import { ProtocolError } from './errors';

export interface Frame {
  /** Message type byte (e.g. 0x51 'Q'); 0 for the code-less startup packet. */
  code: number;
  buf: Buffer;
  /** Offset of the first byte of the whole frame, header included. */
  start: number;
  /** Offset of the first payload byte (after code and length). */
  body: number;
  /** Offset just past the frame. */
  end: number;
  /**
   * Set on a frame whose body was skipped unread because it was larger than the caller allows for
   * its type (see FrameReader's `skipLimit`): the declared length. `buf` then holds only the header.
   */
  skipped?: number;
  /** With `skipped`: refused because the shared budget for large messages was spent, not for its type's limit. */
  overBudget?: true;
}

/** A budget for large messages shared with other readers (see sidecar/postgres/message-budget.ts). */
export interface LargeMessageBudget {
  /** Messages larger than this (length field included) draw from the budget. */
  readonly largeBytes: number;
  reserve(bytes: number): boolean;
  release(bytes: number): void;
}

const EMPTY = Buffer.alloc(0);

export class FrameReader {
  private buf: Buffer = EMPTY;
  private off = 0;
  // Chunks that arrived while `buf` held an incomplete frame. They are joined only once enough bytes
  // are there (see `have`): re-joining on every push made a large message in small chunks quadratic.
  private more: Buffer[] = [];
  private moreLength = 0;
  /** Bytes of a skipped frame still to come: dropped as they arrive. */
  private skipping = 0;
  /** Budget reserved for the large frame being assembled at `off`. */
  private assembling = 0;
  /** Budget reserved for the large frame last returned: released at the next call (it has been handled). */
  private returned = 0;

  /**
   * `maxLength` bounds one message (length field included) so a hostile peer cannot make us buffer
   * without limit. `skipLimit(code)`, when it returns a number, is the largest body accepted for
   * that message type: a larger one is returned at once as a header-only frame marked `skipped`,
   * and its body is dropped as it arrives, so it is refused without ever being held in memory.
   */
  constructor(
    private readonly maxLength: number,
    private readonly skipLimit?: (code: number) => number | undefined,
    private readonly budget?: LargeMessageBudget,
  ) {}

  /** Gives back what this reader holds of the shared budget (the connection is gone). */
  dispose(): void {
    this.budget?.release(this.assembling + this.returned);
    this.assembling = 0;
    this.returned = 0;
  }

  push(chunk: Buffer): void {
    if (this.skipping > 0) {
      if (chunk.length <= this.skipping) {
        this.skipping -= chunk.length;
        return;
      }
      chunk = chunk.subarray(this.skipping);
      this.skipping = 0;
    }
    if (this.off >= this.buf.length && this.more.length === 0) {
      this.buf = chunk;
      this.off = 0;
    } else {
      this.more.push(chunk);
      this.moreLength += chunk.length;
    }
  }

  /** Bytes received but not yet returned as a frame. */
  get pending(): number {
    return this.buf.length - this.off + this.moreLength;
  }

  /** Whether `n` bytes have arrived; if so they are contiguous in `buf` from `off`. */
  private have(n: number): boolean {
    const avail = this.buf.length - this.off;
    if (avail >= n) return true;
    if (avail + this.moreLength < n) return false;
    this.buf = Buffer.concat([this.buf.subarray(this.off), ...this.more]);
    this.off = 0;
    this.more = [];
    this.moreLength = 0;
    return true;
  }

  /** The next complete typed frame, or null when more bytes are needed. */
  next(): Frame | null {
    if (this.returned > 0) {
      this.budget!.release(this.returned);
      this.returned = 0;
    }
    if (!this.have(5)) return null;
    const code = this.buf[this.off];
    const len = this.buf.readInt32BE(this.off + 1);
    if (len < 4) throw new ProtocolError(`invalid message length ${len} for message type 0x${code.toString(16)}`);
    if (this.assembling === 0) {
      const limit = this.skipLimit?.(code);
      if (limit !== undefined && len - 4 > limit) return this.skip(code, len);
    }
    if (len > this.maxLength) {
      throw new ProtocolError(`message of ${len} bytes exceeds the limit of ${this.maxLength} bytes`, 'message_too_large');
    }
    if (this.budget && len > this.budget.largeBytes && this.assembling === 0) {
      // Reserved once, when the header arrives: a message the budget cannot hold is never buffered.
      if (!this.budget.reserve(len)) return { ...this.skip(code, len), overBudget: true };
      this.assembling = len;
    }
    if (!this.have(1 + len)) return null;
    const start = this.off;
    this.off += 1 + len;
    this.returned = this.assembling;
    this.assembling = 0;
    return { code, buf: this.buf, start, body: start + 5, end: this.off };
  }

  /** Drops the frame at `off` (what has arrived now, the rest as it comes) and returns its header. */
  private skip(code: number, len: number): Frame {
    const header = Buffer.from(this.buf.subarray(this.off, this.off + 5));
    let left = 1 + len;
    const inBuf = Math.min(left, this.buf.length - this.off);
    this.off += inBuf;
    left -= inBuf;
    while (left > 0 && this.more.length > 0) {
      const c = this.more[0];
      if (c.length <= left) {
        left -= c.length;
        this.moreLength -= c.length;
        this.more.shift();
      } else {
        this.more[0] = c.subarray(left);
        this.moreLength -= left;
        left = 0;
      }
    }
    if (this.off >= this.buf.length && this.more.length > 0) {
      this.buf = this.more.length === 1 ? this.more[0] : Buffer.concat(this.more);
      this.off = 0;
      this.more = [];
      this.moreLength = 0;
    }
    this.skipping = left;
    return { code, buf: header, start: 0, body: 5, end: 5, skipped: len };
  }

  /** The next startup-phase packet (no type byte), or null when more bytes are needed. */
  nextStartup(): Frame | null {
    if (!this.have(4)) return null;
    const len = this.buf.readInt32BE(this.off);
    if (len < 8 || len > 10240) throw new ProtocolError(`invalid startup packet length ${len}`);
    if (!this.have(len)) return null;
    const start = this.off;
    this.off += len;
    return { code: 0, buf: this.buf, start, body: start + 4, end: this.off };
  }
}
