// The export thread's view of the spool: it reads the records the main thread appended straight
// from the segment files (the page cache: the bytes were written moments ago) and moves the
// acknowledged mark — the cursor file, then the shared progress array the main thread reads.
// The main thread keeps writing, rotating and reclaiming segments; it never reads a record back.
//
// Why read the files rather than receive each record by message: no per-record message or copy
// on the main thread, memory stays bounded however long the collector is away (the spool is the
// queue), and one path serves both the live records and those a crash or a restart left behind.
// Reading never needs the writer's lock: a frame being written reads as incomplete (and is taken
// on the next pass), a segment the writer removed (drop-oldest) reads as missing and is skipped.
import type { Logger } from '../../common/log';
import { writeCursor } from './cursor';
import { listSegments, newScanState, readFrames, type SpoolEntry } from './segment';
import { PROGRESS_ACKED, PROGRESS_LAST } from './spool';

/**
 * The cursor file is rewritten at most this often (the shared mark moves on every ack). A cursor
 * behind after a crash only re-sends records the collector has (same ids, see cursor.ts); profiled,
 * one open/write/rename per export batch cost the thread ~6 µs per record on a busy disk.
 */
export const CURSOR_WRITE_INTERVAL_MS = 1000;

export class SpoolTail {
  private readonly progress: BigInt64Array;
  private acked: number;
  /** Where the last read stopped: the next frame of that segment starts at offset and carries seq. */
  private hint: { file: string; firstSeq: number; seq: number; offset: number } | undefined;
  private cursorOnDisk: number;
  private cursorWrittenAt = 0;
  private cursorTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    shared: SharedArrayBuffer,
    private readonly log: Pick<Logger, 'error'>,
  ) {
    this.progress = new BigInt64Array(shared);
    this.acked = Number(Atomics.load(this.progress, PROGRESS_ACKED));
    this.cursorOnDisk = this.acked;
  }

  /** The main thread's last written sequence number and the acknowledged one. */
  stats(): { ackedSeq: number; lastSeq: number } {
    return { ackedSeq: this.acked, lastSeq: Number(Atomics.load(this.progress, PROGRESS_LAST)) };
  }

  /**
   * Records after `afterSeq` that the writer has finished (up to its published last sequence
   * number), in order, at most `max.records` and `max.bytes` of payload (always at least one).
   */
  readUnacked(afterSeq: number, max: { records: number; bytes: number }): SpoolEntry[] {
    const last = Number(Atomics.load(this.progress, PROGRESS_LAST));
    const out: SpoolEntry[] = [];
    if (last <= afterSeq) return out;
    let bytes = 0;
    const segments = listSegments(this.dir);
    // The segment holding afterSeq + 1: the last one starting at or before it (or the first after
    // it, when the records in between were dropped).
    let i = 0;
    while (i + 1 < segments.length && segments[i + 1].firstSeq <= afterSeq + 1) i++;
    for (; i < segments.length; i++) {
      const seg = segments[i];
      const h = this.hint;
      const resume = h && h.file === seg.file && h.seq === afterSeq + 1 ? h : undefined;
      const state = newScanState();
      for (const f of readFrames(seg.file, { firstSeq: seg.firstSeq, offset: resume?.offset, seq: resume?.seq, state })) {
        if (f.seq > last) return out;
        if (f.seq <= afterSeq) continue;
        if (out.length >= max.records || (out.length > 0 && bytes + f.payload.length > max.bytes)) return out;
        out.push({ seq: f.seq, payload: Buffer.from(f.payload) });
        bytes += f.payload.length;
        this.hint = { file: seg.file, firstSeq: seg.firstSeq, seq: f.seq + 1, offset: f.end };
      }
      if (state.status === 'corrupt')
        this.log.error('audit spool segment is damaged: skipping the rest of it', {
          file: seg.file,
          offset: state.validEnd,
          reason: state.reason,
        });
    }
    return out;
  }

  /**
   * Everything up to uptoSeq was delivered: the shared mark at once (the main thread may reclaim
   * those records), the cursor file at most every CURSOR_WRITE_INTERVAL_MS and on close().
   */
  ack(uptoSeq: number): void {
    const upto = Math.min(Math.floor(uptoSeq), Number(Atomics.load(this.progress, PROGRESS_LAST)));
    if (!(upto > this.acked)) return;
    this.acked = upto;
    Atomics.store(this.progress, PROGRESS_ACKED, BigInt(upto));
    const wait = this.cursorWrittenAt + CURSOR_WRITE_INTERVAL_MS - Date.now();
    if (wait <= 0) this.writeCursor();
    else if (this.cursorTimer === undefined) {
      this.cursorTimer = setTimeout(() => {
        this.cursorTimer = undefined;
        this.writeCursor();
      }, wait);
      this.cursorTimer.unref();
    }
  }

  /** Writes a cursor still pending (on shutdown). */
  close(): void {
    if (this.cursorTimer !== undefined) clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    this.writeCursor();
  }

  private writeCursor(): void {
    if (this.acked === this.cursorOnDisk) return;
    try {
      writeCursor(this.dir, this.acked);
      this.cursorOnDisk = this.acked;
      this.cursorWrittenAt = Date.now();
    } catch (e) {
      // The records were delivered; a stale cursor only means they are sent again after a restart.
      this.log.error('audit spool cursor could not be written', { dir: this.dir, error: (e as Error).message });
    }
  }
}
