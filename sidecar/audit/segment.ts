// Segment files: naming, listing and reading frames back. A segment is named by the sequence number
// of its first record (`00000000000000000001.seg`) and holds consecutive records, so a record's
// position follows from the name and its index. Reading never needs the writer's lock: a reader
// stops at the first frame that is incomplete (being written) or invalid.
import fs from 'node:fs';
import path from 'node:path';
import { decodeFrame } from './frame';

export const SEGMENT_SUFFIX = '.seg';
const NAME_RE = /^(\d{20})\.seg$/;
const CHUNK_BYTES = 64 * 1024;

export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

export function parseSegmentName(name: string): number | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

export interface SegmentFile {
  file: string;
  firstSeq: number;
}

/** The segment files in `dir`, oldest first. Other files (the cursor, the lock) are ignored. */
export function listSegments(dir: string): SegmentFile[] {
  const out: SegmentFile[] = [];
  for (const name of fs.readdirSync(dir)) {
    const firstSeq = parseSegmentName(name);
    if (firstSeq !== undefined) out.push({ file: path.join(dir, name), firstSeq });
  }
  return out.sort((a, b) => a.firstSeq - b.firstSeq);
}

export interface Frame {
  seq: number;
  /** A view into the reader's buffer, valid until the next frame is read: copy it to keep it. */
  payload: Buffer;
  /** File offsets of the frame's first byte and of the byte after it. */
  offset: number;
  end: number;
}

/** How a read ended; filled in as frames are read. */
export interface ScanState {
  /** 'end': clean end of data; 'partial': an incomplete frame at the end (torn, or being written). */
  status: 'reading' | 'end' | 'partial' | 'corrupt' | 'missing';
  /** Offset just past the last valid frame read. */
  validEnd: number;
  /** Sequence number the next frame would carry. */
  nextSeq: number;
  reason?: string;
}

export interface ReadFramesOptions {
  /** Sequence number of the segment's first record (from its name). */
  firstSeq: number;
  /** Start reading here, a frame boundary whose record carries `seq`; default: the start. */
  offset?: number;
  seq?: number;
  /** Read no further than this file offset (the writer's known size); default: the file's size. */
  limit?: number;
  state?: ScanState;
}

export function newScanState(): ScanState {
  return { status: 'reading', validEnd: 0, nextSeq: 0 };
}

/** Reads the frames of one segment file in order. A missing file (deleted meanwhile) yields nothing. */
export function* readFrames(file: string, opts: ReadFramesOptions): Generator<Frame, void, undefined> {
  const state = opts.state ?? newScanState();
  let seq = opts.seq ?? opts.firstSeq;
  let frameOffset = opts.offset ?? 0;
  state.validEnd = frameOffset;
  state.nextSeq = seq;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    state.status = 'missing';
    return;
  }
  try {
    const limit = opts.limit ?? fs.fstatSync(fd).size;
    let buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let start = 0;
    let end = 0;
    let filePos = frameOffset;
    for (;;) {
      const r = decodeFrame(buf, start, end, seq);
      if (r.status === 'ok') {
        const frameEnd = frameOffset + (r.end - start);
        yield { seq, payload: buf.subarray(r.payloadStart, r.end), offset: frameOffset, end: frameEnd };
        frameOffset = frameEnd;
        start = r.end;
        seq += 1;
        state.validEnd = frameOffset;
        state.nextSeq = seq;
        continue;
      }
      if (r.status === 'corrupt') {
        state.status = 'corrupt';
        state.reason = r.reason;
        return;
      }
      // Partial: the frame cannot be whole when the file ends before it would.
      if (frameOffset + r.need > limit) {
        state.status = frameOffset === limit ? 'end' : 'partial';
        return;
      }
      if (start > 0) {
        buf.copy(buf, 0, start, end);
        end -= start;
        start = 0;
      }
      if (r.need > buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(r.need, buf.length * 2));
        buf.copy(bigger, 0, 0, end);
        buf = bigger;
      }
      const n = fs.readSync(fd, buf, end, Math.min(buf.length - end, limit - filePos), filePos);
      if (n === 0) {
        // The file shrank under us (a reader racing a truncation): what is left is not a frame.
        state.status = 'partial';
        return;
      }
      end += n;
      filePos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface SpoolEntry {
  seq: number;
  payload: Buffer;
}

/**
 * Every record in a spool directory, oldest first, read-only and without the writer's lock (for
 * `warden replay` while the sidecar runs). Segments deleted while reading are skipped; each segment
 * is read up to its first incomplete or invalid frame.
 */
export function* readSpoolDir(dir: string, fromSeq = 0): Generator<SpoolEntry, void, undefined> {
  const segments = listSegments(dir);
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    // Segments hold consecutive records: one that the next starts at or before fromSeq is all older.
    if (i + 1 < segments.length && segments[i + 1].firstSeq <= fromSeq) continue;
    for (const f of readFrames(seg.file, { firstSeq: seg.firstSeq })) {
      if (f.seq >= fromSeq) yield { seq: f.seq, payload: Buffer.from(f.payload) };
    }
  }
}
