// The audit spool: a durable, size-bounded, append-only log of opaque records that holds audit
// records until the collector acknowledges them, and keeps acknowledged ones for `warden replay`
// until their space is needed.
//
// Layout of the directory:
//   00000000000000000001.seg ...   segments, named by their first sequence number (segment.ts),
//                                  records framed with length, sequence number and CRC (frame.ts)
//   cursor                         the acknowledged sequence number (cursor.ts)
//   lock                           the writer's pid (lock.ts)
//
// Durability: append() hands each record to the kernel with one synchronous write before it
// returns, so a crash of the process loses nothing the agent was answered for; fsync runs in
// batches on a timer (and on close), so a power loss can lose at most one interval.
//
// Shared progress (shareProgress()): the export thread reads records from the segment files itself
// (spool-tail.ts) and moves the acknowledged mark; this object, on the main thread, publishes the
// last sequence number written and reads the acknowledged one through a SharedArrayBuffer, so
// neither side sends a message per record.
//
// Recovery on open: every segment is scanned. An incomplete or invalid frame ends the segment:
// the bytes from there on are cut off and logged (a torn tail after a crash is the usual case).
// In a segment that is not the last, records after the damage cannot be found again without their
// framing, so they are counted as dropped and reading continues with the next segment.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../common/log';
import type { Counter, Metrics } from '../../common/metrics';
import { METRIC } from '../../common/audit/names';
import { fsyncDir, readCursor, removeStaleCursorTmp, writeCursor } from './cursor';
import { FRAME_HEADER_BYTES, MAX_PAYLOAD_BYTES, sealFrame } from './frame';
import { acquireLock } from './lock';
import { listSegments, newScanState, readFrames, segmentName, type SpoolEntry } from './segment';

export type { SpoolEntry } from './segment';

export type WhenFull = 'block' | 'drop-oldest';

export interface SpoolOptions {
  dir: string;
  /** Bound on the bytes of all segments together. */
  maxBytes: number;
  /** A segment is closed once it would grow past this; default maxBytes / 8, at most 16 MiB. */
  segmentBytes?: number;
  /** 'block': append() refuses records (the caller denies the operation); 'drop-oldest': unacknowledged records are deleted. */
  whenFull: WhenFull;
  /** Default 200 ms. */
  fsyncIntervalMs?: number;
  log: Logger;
  metrics?: Metrics;
}

export interface SpoolStats {
  /** Bytes of all segments on disk. */
  bytes: number;
  segments: number;
  /** Sequence number of the oldest record on disk, 0 when there is none. */
  firstSeq: number;
  /** The last sequence number handed out, 0 before the first. */
  lastSeq: number;
  ackedSeq: number;
  /** Records on disk not yet acknowledged. */
  pending: number;
  /** Unacknowledged records dropped by this process (drop-oldest, or damage found on open). */
  dropped: number;
}

/** Slots of the shared progress array (BigInt64Array over a SharedArrayBuffer). */
export const PROGRESS_LAST = 0;
export const PROGRESS_ACKED = 1;
export const PROGRESS_SLOTS = 2;

export class SpoolError extends Error {
  constructor(
    readonly code: 'SPOOL_OPTIONS' | 'SPOOL_DIR' | 'SPOOL_CORRUPT' | 'SPOOL_CLOSED' | 'SPOOL_RECORD_TOO_LARGE',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface Segment {
  file: string;
  firstSeq: number;
  count: number;
  bytes: number;
}

const DEFAULT_FSYNC_INTERVAL_MS = 200;
const MAX_DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
const MIN_SCRATCH_BYTES = 64 * 1024;

function lastSeqOf(s: Segment): number {
  return s.firstSeq + s.count - 1;
}

function checkOptions(o: SpoolOptions): Required<Pick<SpoolOptions, 'segmentBytes' | 'fsyncIntervalMs'>> {
  const bad = (field: string, why: string): never => {
    throw new SpoolError('SPOOL_OPTIONS', `audit spool: ${field} ${why}`);
  };
  if (!Number.isSafeInteger(o.maxBytes) || o.maxBytes <= FRAME_HEADER_BYTES)
    bad('maxBytes', `must be an integer above ${FRAME_HEADER_BYTES}, not ${o.maxBytes}`);
  const segmentBytes = o.segmentBytes ?? Math.max(FRAME_HEADER_BYTES + 1, Math.min(MAX_DEFAULT_SEGMENT_BYTES, Math.floor(o.maxBytes / 8)));
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes <= FRAME_HEADER_BYTES || segmentBytes > o.maxBytes) {
    bad('segmentBytes', `must be an integer above ${FRAME_HEADER_BYTES} and at most maxBytes (${o.maxBytes}), not ${segmentBytes}`);
  }
  if (o.whenFull !== 'block' && o.whenFull !== 'drop-oldest')
    bad('whenFull', `must be "block" or "drop-oldest", not "${String(o.whenFull)}"`);
  const fsyncIntervalMs = o.fsyncIntervalMs ?? DEFAULT_FSYNC_INTERVAL_MS;
  if (!(fsyncIntervalMs >= 0) || !Number.isFinite(fsyncIntervalMs))
    bad('fsyncIntervalMs', `must be a number of milliseconds >= 0, not ${fsyncIntervalMs}`);
  return { segmentBytes, fsyncIntervalMs };
}

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  // Node's fs messages already start with the code ("ENOENT: no such file or directory, mkdir ...").
  if (err.code && !String(err.message).startsWith(err.code)) return `${err.code}: ${err.message}`;
  return String(err.message ?? e);
}

export class Spool {
  readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private mode: WhenFull;
  private readonly fsyncIntervalMs: number;
  private readonly log: Logger;

  private readonly segments: Segment[];
  /** The segment appended to: always the last of `segments`. */
  private active: Segment;
  private fd: number;
  private totalBytes: number;
  private nextSeq: number;
  private ackedSeq: number;
  private dropped = 0;
  private isFull = false;
  private blockedSinceFull = 0;
  private closed = false;
  private readonly releaseLock: () => void;

  /** Frames are built here and written with one call: no allocation per record. */
  private scratch = Buffer.allocUnsafe(MIN_SCRATCH_BYTES);

  // fsync batching
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private dirty = false;
  private dirDirty = false;
  /** Descriptors of segments closed for appending and not yet fsynced. */
  private retired: number[] = [];

  /** Set by shareProgress(): [PROGRESS_LAST] written here, [PROGRESS_ACKED] by the export thread. */
  private shared: BigInt64Array | undefined;

  private readonly metricDropped?: Counter;
  private readonly gaugeBytes?: { set(labels: Record<string, string>, v: number): void };
  private readonly gaugePending?: { set(labels: Record<string, string>, v: number): void };

  private constructor(
    opts: SpoolOptions,
    state: { segments: Segment[]; fd: number; ackedSeq: number; nextSeq: number; dropped: number; release: () => void },
  ) {
    const checked = checkOptions(opts);
    this.dir = opts.dir;
    this.maxBytes = opts.maxBytes;
    this.segmentBytes = checked.segmentBytes;
    this.mode = opts.whenFull;
    this.fsyncIntervalMs = checked.fsyncIntervalMs;
    this.log = opts.log;
    this.segments = state.segments;
    this.active = state.segments[state.segments.length - 1];
    this.fd = state.fd;
    this.totalBytes = state.segments.reduce((n, s) => n + s.bytes, 0);
    this.ackedSeq = state.ackedSeq;
    this.nextSeq = state.nextSeq;
    this.dropped = state.dropped;
    this.releaseLock = state.release;
    if (opts.metrics) {
      const m = opts.metrics;
      this.metricDropped = m.counter(
        METRIC.spoolDropped,
        'Audit records dropped, by reason: drop-oldest (spool full), refused (full in block mode, or the write failed), damaged (found on open), unwritable (could not be built).',
      );
      this.gaugeBytes = m.gauge(METRIC.spoolBytes, 'Bytes of the audit spool on disk.');
      this.gaugePending = m.gauge(METRIC.spoolRecords, 'Audit records in the spool not yet acknowledged by the collector.');
      if (state.dropped > 0) this.metricDropped.inc({ reason: 'damaged' }, state.dropped);
    }
    this.publish();
  }

  /**
   * Opens (creating if needed) and recovers the spool in `opts.dir`, taking its lock. Throws
   * SpoolError when the directory cannot be created or written, and SpoolLockedError when another
   * process holds it: the sidecar must not run without its audit trail.
   */
  static open(opts: SpoolOptions): Spool {
    checkOptions(opts);
    const { dir, log } = opts;
    try {
      makeDir(dir);
    } catch (e) {
      throw new SpoolError('SPOOL_DIR', `cannot create audit spool directory ${dir} (${describeFsError(e)})`, { cause: e });
    }
    let release: () => void;
    try {
      release = acquireLock(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'ENOTDIR') {
        throw new SpoolError('SPOOL_DIR', `audit spool directory ${dir} is not writable (${describeFsError(e)})`, { cause: e });
      }
      throw e;
    }
    try {
      removeStaleCursorTmp(dir);
      const ackedSeq = readCursor(dir, log);
      const { segments, dropped } = recoverSegments(dir, log);
      const last = segments[segments.length - 1];
      const nextOnDisk = last ? last.firstSeq + last.count : 1;
      const nextSeq = Math.max(nextOnDisk, ackedSeq + 1);
      let fd: number;
      if (last && nextOnDisk === nextSeq) {
        fd = fs.openSync(last.file, 'a');
      } else {
        // No segment yet, or the cursor is ahead of what is on disk (segments removed by hand).
        const seg: Segment = { file: path.join(dir, segmentName(nextSeq)), firstSeq: nextSeq, count: 0, bytes: 0 };
        fd = fs.openSync(seg.file, 'a');
        segments.push(seg);
      }
      fsyncDir(dir);
      const spool = new Spool(opts, { segments, fd, ackedSeq, nextSeq, dropped, release });
      log.info('audit spool opened', { dir, ...spool.stats() });
      return spool;
    } catch (e) {
      release();
      if (e instanceof SpoolError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') {
        throw new SpoolError('SPOOL_DIR', `audit spool directory ${dir} is not writable (${describeFsError(e)})`, { cause: e });
      }
      throw e;
    }
  }

  /**
   * Writes one record to the kernel before returning its sequence number (hot path: one write,
   * no allocation). Returns undefined when the spool is full in 'block' mode, or the write failed:
   * the caller then refuses the operation. Throws SpoolError for a record that could never fit.
   */
  append(payload: Buffer | string): number | undefined {
    if (this.closed) throw new SpoolError('SPOOL_CLOSED', `audit spool ${this.dir} is closed`);
    let len: number;
    if (typeof payload === 'string') {
      // A UTF-16 code unit is at most 3 UTF-8 bytes: with that much room, write first, measure after.
      if (FRAME_HEADER_BYTES + payload.length * 3 > this.scratch.length) this.reserve(Buffer.byteLength(payload));
      len = this.scratch.write(payload, FRAME_HEADER_BYTES, 'utf8');
    } else {
      len = payload.length;
      if (FRAME_HEADER_BYTES + len > this.scratch.length) this.reserve(len);
      payload.copy(this.scratch, FRAME_HEADER_BYTES);
    }
    const frameLen = FRAME_HEADER_BYTES + len;
    if (frameLen > this.maxBytes) throw this.tooLarge(len);
    if (this.active.bytes > 0 && this.active.bytes + frameLen > this.segmentBytes) this.roll();
    if (this.totalBytes + frameLen > this.maxBytes && !this.makeRoom(frameLen)) return this.refuse();
    const seq = this.nextSeq;
    sealFrame(this.scratch, seq, len);
    if (!this.write(frameLen)) return this.refuse();
    if (this.isFull) this.setFull(false);
    this.nextSeq = seq + 1;
    this.active.count += 1;
    this.active.bytes += frameLen;
    this.totalBytes += frameLen;
    this.dirty = true;
    if (this.shared !== undefined) Atomics.store(this.shared, PROGRESS_LAST, BigInt(seq));
    if (this.syncTimer === undefined) this.scheduleSync();
    return seq;
  }

  /** Records everything up to `uptoSeq` as delivered, durably. Acknowledged segments become reclaimable. */
  ack(uptoSeq: number): void {
    if (this.closed) throw new SpoolError('SPOOL_CLOSED', `audit spool ${this.dir} is closed`);
    const upto = Math.min(Math.floor(uptoSeq), this.nextSeq - 1);
    if (!(upto > this.ackedSeq)) return;
    writeCursor(this.dir, upto);
    this.ackedSeq = upto;
    if (this.shared !== undefined) Atomics.store(this.shared, PROGRESS_ACKED, BigInt(upto));
    // Space is taken back lazily by the next append; a blocked spool can take records again now.
    const oldest = this.segments[0];
    if (this.isFull && oldest.count > 0 && lastSeqOf(oldest) <= upto) this.setFull(false);
    this.publish();
  }

  /** What happens when the spool is full; settable, so a policy reload takes effect at once. */
  get whenFull(): WhenFull {
    return this.mode;
  }

  /**
   * Whether `bytes` more could be appended without touching unacknowledged records: free space plus
   * acknowledged segments that can be reclaimed. Block mode checks this before an operation runs,
   * with room kept for the records of operations already running (their records must fit).
   */
  hasRoom(bytes: number): boolean {
    this.refreshAck();
    let free = this.maxBytes - this.totalBytes;
    for (const seg of this.segments) {
      if (free >= bytes) return true;
      if (seg === this.active || (seg.count > 0 && lastSeqOf(seg) > this.ackedSeq)) break;
      free += seg.bytes;
    }
    return free >= bytes;
  }

  set whenFull(mode: WhenFull) {
    if (mode !== 'block' && mode !== 'drop-oldest')
      throw new SpoolError('SPOOL_OPTIONS', `audit spool: whenFull must be "block" or "drop-oldest", not "${String(mode)}"`);
    if (mode === this.mode) return;
    this.mode = mode;
    this.log.info('audit spool: whenFull changed', { dir: this.dir, whenFull: mode });
    // drop-oldest never refuses for lack of space: the next append makes room.
    if (mode === 'drop-oldest') this.setFull(false);
  }

  /** True while records are being refused ('block' mode with only unacknowledged data on disk). */
  get full(): boolean {
    this.refreshAck();
    return this.isFull;
  }

  stats(): SpoolStats {
    this.refreshAck();
    let pending = 0;
    let firstSeq = 0;
    for (const s of this.segments) {
      if (s.count === 0) continue;
      if (firstSeq === 0) firstSeq = s.firstSeq;
      pending += Math.max(0, Math.min(s.count, lastSeqOf(s) - this.ackedSeq));
    }
    return {
      bytes: this.totalBytes,
      segments: this.segments.length,
      firstSeq,
      lastSeq: this.nextSeq - 1,
      ackedSeq: this.ackedSeq,
      pending,
      dropped: this.dropped,
    };
  }

  /** Every record still on disk, acknowledged or not, oldest first (for replay). */
  *entries(opts: { fromSeq?: number } = {}): Generator<SpoolEntry, void, undefined> {
    const from = opts.fromSeq ?? 0;
    for (const seg of this.segments.slice()) {
      if (seg.count === 0 || lastSeqOf(seg) < from) continue;
      for (const f of readFrames(seg.file, { firstSeq: seg.firstSeq, limit: seg.bytes })) {
        if (f.seq >= from) yield { seq: f.seq, payload: Buffer.from(f.payload) };
      }
    }
  }

  /**
   * Hands the progress marks to another thread: from now on the last sequence number written is
   * published in the returned buffer, and the acknowledged one is read from it (the export thread
   * writes the cursor file and then the mark). Idempotent.
   */
  shareProgress(): SharedArrayBuffer {
    if (this.shared === undefined) {
      this.shared = new BigInt64Array(new SharedArrayBuffer(PROGRESS_SLOTS * 8));
      Atomics.store(this.shared, PROGRESS_LAST, BigInt(this.nextSeq - 1));
      Atomics.store(this.shared, PROGRESS_ACKED, BigInt(this.ackedSeq));
    }
    return this.shared.buffer as SharedArrayBuffer;
  }

  /** fsyncs everything appended so far. */
  flush(): Promise<void> {
    if (this.syncTimer !== undefined) {
      clearTimeout(this.syncTimer);
      this.syncTimer = undefined;
    }
    return this.syncQueued();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    await this.syncing;
    try {
      for (const fd of [...this.retired, this.fd]) {
        fs.fsyncSync(fd);
        fs.closeSync(fd);
      }
      this.retired = [];
      fsyncDir(this.dir);
    } finally {
      this.releaseLock();
    }
    this.log.info('audit spool closed', { dir: this.dir, ...this.stats() });
  }

  // ---------------------------------------------------------------------------------------------

  /** Takes in an acknowledgement the export thread made (one atomic load when there is none). */
  private refreshAck(): void {
    if (this.shared === undefined) return;
    const acked = Number(Atomics.load(this.shared, PROGRESS_ACKED));
    if (!(acked > this.ackedSeq)) return;
    this.ackedSeq = Math.min(acked, this.nextSeq - 1);
    // As in ack(): space is taken back lazily by the next append; a blocked spool takes records again.
    const oldest = this.segments[0];
    if (this.isFull && oldest.count > 0 && lastSeqOf(oldest) <= this.ackedSeq) this.setFull(false);
    this.publish();
  }

  /** Makes the scratch buffer hold a frame with `payloadBytes` of payload. */
  private reserve(payloadBytes: number): void {
    const need = FRAME_HEADER_BYTES + payloadBytes;
    if (payloadBytes > MAX_PAYLOAD_BYTES || need > this.maxBytes) throw this.tooLarge(payloadBytes);
    if (need <= this.scratch.length) return;
    let size = this.scratch.length;
    while (size < need) size *= 2;
    this.scratch = Buffer.allocUnsafe(size);
  }

  private tooLarge(payloadBytes: number): SpoolError {
    return new SpoolError(
      'SPOOL_RECORD_TOO_LARGE',
      `audit record of ${payloadBytes} bytes cannot fit in the spool (maxBytes ${this.maxBytes}, record limit ${MAX_PAYLOAD_BYTES}); truncate payloads before appending`,
    );
  }

  /** One write of the frame in scratch; on failure the segment is cut back to its last whole record. */
  private write(frameLen: number): boolean {
    let written = 0;
    let error: unknown;
    try {
      written = fs.writeSync(this.fd, this.scratch, 0, frameLen);
    } catch (e) {
      error = e;
    }
    if (written === frameLen) return true;
    try {
      fs.ftruncateSync(this.fd, this.active.bytes);
    } catch (e) {
      this.log.error('audit spool: cannot cut back a failed write; the next open will drop the torn record', {
        file: this.active.file,
        error: describeFsError(e),
      });
    }
    this.log.error('audit spool write failed: refusing the operation', {
      file: this.active.file,
      wrote: written,
      of: frameLen,
      error: error === undefined ? 'short write' : describeFsError(error),
    });
    return false;
  }

  private refuse(): undefined {
    this.metricDropped?.inc({ reason: 'refused' });
    this.blockedSinceFull += 1;
    if (!this.isFull && this.mode === 'block') this.setFull(true);
    return undefined;
  }

  private setFull(full: boolean): void {
    if (full === this.isFull) return;
    this.isFull = full;
    const s = this.stats();
    if (full) {
      this.blockedSinceFull = 1;
      this.log.warn(
        'audit spool is full of unacknowledged records: refusing new operations until the collector catches up (whenFull: block)',
        {
          dir: this.dir,
          bytes: s.bytes,
          maxBytes: this.maxBytes,
          pending: s.pending,
        },
      );
    } else {
      this.log.warn('audit spool has room again: accepting operations', {
        dir: this.dir,
        refused: this.blockedSinceFull,
        pending: s.pending,
      });
      this.blockedSinceFull = 0;
    }
  }

  /** Closes the active segment for appending and starts a new one at nextSeq. */
  private roll(): void {
    const seg: Segment = { file: path.join(this.dir, segmentName(this.nextSeq)), firstSeq: this.nextSeq, count: 0, bytes: 0 };
    const fd = fs.openSync(seg.file, 'a');
    this.retired.push(this.fd);
    this.fd = fd;
    this.segments.push(seg);
    this.active = seg;
    this.dirDirty = true;
    if (this.syncTimer === undefined) this.scheduleSync();
  }

  /**
   * Frees space for a frame of `frameLen` bytes: acknowledged segments first (oldest first), then,
   * in 'drop-oldest' mode, the oldest unacknowledged ones. False when only unacknowledged data is
   * left in 'block' mode.
   */
  private makeRoom(frameLen: number): boolean {
    this.refreshAck();
    while (this.totalBytes + frameLen > this.maxBytes) {
      const oldest = this.segments[0];
      const acked = oldest.count === 0 || lastSeqOf(oldest) <= this.ackedSeq;
      if (!acked && this.mode === 'block') return false;
      if (oldest === this.active) {
        // Only reached with records in it: frameLen <= maxBytes, so an empty spool always has room.
        this.roll();
        continue;
      }
      if (!acked) {
        const lost = Math.min(oldest.count, lastSeqOf(oldest) - this.ackedSeq);
        this.dropped += lost;
        this.metricDropped?.inc({ reason: 'drop-oldest' }, lost);
        this.log.warn('audit spool full: dropped the oldest unacknowledged records (whenFull: drop-oldest)', {
          dir: this.dir,
          dropped: lost,
          fromSeq: Math.max(oldest.firstSeq, this.ackedSeq + 1),
          toSeq: lastSeqOf(oldest),
          droppedTotal: this.dropped,
        });
      }
      this.removeOldest();
    }
    this.publish();
    return true;
  }

  private removeOldest(): void {
    const seg = this.segments.shift()!;
    fs.rmSync(seg.file, { force: true });
    this.totalBytes -= seg.bytes;
    this.dirDirty = true;
  }

  private scheduleSync(): void {
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.syncQueued().catch((e: unknown) => this.log.error('audit spool fsync failed', { dir: this.dir, error: describeFsError(e) }));
    }, this.fsyncIntervalMs);
    // Pending fsyncs must not keep the process alive: the data is in the kernel already.
    this.syncTimer.unref();
  }

  /** Runs one fsync batch after any in flight, so batches never overlap. */
  private syncQueued(): Promise<void> {
    const next = this.syncing.then(() => this.syncBatch());
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private async syncBatch(): Promise<void> {
    if (this.closed) return;
    const retired = this.retired;
    this.retired = [];
    const fds = this.dirty ? [this.fd, ...retired] : retired;
    const dirDirty = this.dirDirty;
    this.dirty = false;
    this.dirDirty = false;
    try {
      await Promise.all(fds.map((fd) => fsyncAsync(fd)));
      if (dirDirty) await fsyncDirAsync(this.dir);
    } finally {
      for (const fd of retired) fs.close(fd, () => undefined);
      this.publish();
    }
  }

  private publish(): void {
    if (!this.gaugeBytes || !this.gaugePending) return;
    const s = this.stats();
    this.gaugeBytes.set({}, s.bytes);
    this.gaugePending.set({}, s.pending);
  }
}

function fsyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

function fsyncDirAsync(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.open(dir, 'r', (err, fd) => {
      if (err) return reject(err);
      fs.fsync(fd, (syncErr) => fs.close(fd, () => (syncErr ? reject(syncErr) : resolve())));
    });
  });
}

/**
 * Scans every segment, cuts off damaged or incomplete tails, and removes emptied segments other
 * than the last. Returns the surviving segments and how many records were lost to damage.
 */
function recoverSegments(dir: string, log: Logger): { segments: Segment[]; dropped: number } {
  const files = listSegments(dir);
  const segments: Segment[] = [];
  let dropped = 0;
  for (let i = 0; i < files.length; i++) {
    const { file, firstSeq } = files[i];
    const prev = segments[segments.length - 1];
    if (prev && firstSeq <= lastSeqOf(prev)) {
      throw new SpoolError(
        'SPOOL_CORRUPT',
        `audit spool ${dir}: segment ${path.basename(file)} overlaps ${path.basename(prev.file)}; move one of them away`,
      );
    }
    const state = newScanState();
    let count = 0;
    for (const f of readFrames(file, { firstSeq, state })) {
      void f;
      count += 1;
    }
    const size = fs.statSync(file).size;
    const isLast = i === files.length - 1;
    if (state.validEnd < size) {
      fs.truncateSync(file, state.validEnd);
      const next = files[i + 1];
      if (isLast) {
        log.warn('audit spool: cut off an incomplete or invalid record at the end (the process stopped mid-write)', {
          file,
          offset: state.validEnd,
          droppedBytes: size - state.validEnd,
          reason: state.reason ?? 'incomplete frame',
        });
      } else {
        // Seqs up to the next segment's first belonged here; the next segment is read as usual.
        const lost = next.firstSeq - (firstSeq + count);
        dropped += Math.max(0, lost);
        log.error('audit spool: damaged segment; records after the damage are lost, reading continues with the next segment', {
          file,
          offset: state.validEnd,
          droppedBytes: size - state.validEnd,
          droppedRecords: lost,
          reason: state.reason ?? 'incomplete frame',
        });
      }
    }
    if (count === 0 && !isLast) {
      fs.rmSync(file, { force: true });
      continue;
    }
    segments.push({ file, firstSeq, count, bytes: state.validEnd });
  }
  return { segments, dropped };
}

/**
 * mkdir -p without `fs.mkdirSync(dir, {recursive: true})`, which spins forever (Node 20) when the
 * kernel answers ENOENT under a parent that exists, as under /proc or /sys.
 */
function makeDir(dir: string): void {
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && fs.statSync(dir).isDirectory()) return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir || fs.existsSync(parent)) throw e;
    makeDir(parent);
    fs.mkdirSync(dir);
  }
}
