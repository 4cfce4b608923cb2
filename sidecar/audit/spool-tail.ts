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

export class SpoolTail {
  private readonly progress: BigInt64Array;
  private acked: number;
  /** Where the last read stopped: the next frame of that segment starts at offset and carries seq. */
  private hint: { file: string; firstSeq: number; seq: number; offset: number } | undefined;

  constructor(
    readonly dir: string,
    shared: SharedArrayBuffer,
    private readonly log: Pick<Logger, 'error'>,
  ) {
    this.progress = new BigInt64Array(shared);
    this.acked = Number(Atomics.load(this.progress, PROGRESS_ACKED));
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
      if (state.status === 'corrupt') this.log.error('audit spool segment is damaged: skipping the rest of it', { file: seg.file, offset: state.validEnd, reason: state.reason });
    }
    return out;
  }

  /** Everything up to uptoSeq was delivered: the cursor file first, then the shared mark. */
  ack(uptoSeq: number): void {
    const upto = Math.min(Math.floor(uptoSeq), Number(Atomics.load(this.progress, PROGRESS_LAST)));
    if (!(upto > this.acked)) return;
    writeCursor(this.dir, upto);
    this.acked = upto;
    Atomics.store(this.progress, PROGRESS_ACKED, BigInt(upto));
  }
}
