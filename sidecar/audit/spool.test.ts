import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { METRIC } from '../../common/audit/names';
import { createLogger, silentLogger, type Logger } from '../../common/log';
import { Metrics } from '../../common/metrics';
import { SpoolLockedError } from './lock';
import { readSpoolDir } from './segment';
import { Spool, SpoolError, type SpoolOptions } from './spool';
import { SpoolTail } from './spool-tail';

/** What the export thread reads (spool-tail.ts): the main thread's Spool never reads records back. */
function unacked(s: Spool, afterSeq: number, max: { records: number; bytes: number }): Array<{ seq: number; payload: Buffer }> {
  return new SpoolTail(s.dir, s.shareProgress(), silentLogger).readUnacked(afterSeq, max);
}

type Line = Record<string, unknown> & { level: string; msg: string };

function capture(): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  return { log: createLogger({}, 'debug', (l) => lines.push(JSON.parse(l) as Line)), lines };
}

/** Frame bytes built independently of the spool: [crc32][len][seq hi][seq lo][payload]. */
function frame(seq: number, payload: string): Buffer {
  const p = Buffer.from(payload);
  const body = Buffer.alloc(12 + p.length);
  body.writeUInt32LE(p.length, 0);
  body.writeUInt32LE(Math.floor(seq / 2 ** 32), 4);
  body.writeUInt32LE(seq % 2 ** 32, 8);
  p.copy(body, 12);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(zlib.crc32(body));
  return Buffer.concat([crc, body]);
}

const dirs: string[] = [];
const open: Spool[] = [];

// The property test does thousands of fsyncs (cursor writes, reopen): tmpfs keeps it fast.
const SHM = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

function tmpDir(base = os.tmpdir()): string {
  const d = fs.mkdtempSync(path.join(base, 'warden-spool-'));
  dirs.push(d);
  return d;
}

function spool(opts: Partial<SpoolOptions> & { dir: string }): Spool {
  const s = Spool.open({ maxBytes: 1 << 20, whenFull: 'block', log: capture().log, fsyncIntervalMs: 20, ...opts });
  open.push(s);
  return s;
}

async function reopen(s: Spool, opts: Partial<SpoolOptions> & { dir: string }): Promise<Spool> {
  await s.close();
  return spool(opts);
}

const text = (entries: Array<{ payload: Buffer }>): string[] => entries.map((e) => e.payload.toString());
const segFiles = (dir: string): string[] =>
  fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .sort();
const ALL = { records: 1e9, bytes: 1e12 };

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('append, read, ack', () => {
  it('round-trips records in order and persists the cursor', async () => {
    const dir = tmpDir();
    const s = spool({ dir });
    expect(s.append('one')).toBe(1);
    expect(s.append(Buffer.from('two'))).toBe(2);
    expect(s.append('{"x":"drei ü"}')).toBe(3);

    expect(text(unacked(s, 0, ALL))).toEqual(['one', 'two', '{"x":"drei ü"}']);
    // Paging: by count, by bytes (always at least one record), continuing from the last seq.
    expect(unacked(s, 0, { records: 2, bytes: 1e6 }).map((e) => e.seq)).toEqual([1, 2]);
    expect(unacked(s, 2, { records: 2, bytes: 1e6 }).map((e) => e.seq)).toEqual([3]);
    expect(unacked(s, 0, { records: 10, bytes: 1 }).map((e) => e.seq)).toEqual([1]);
    expect(unacked(s, 0, { records: 10, bytes: 6 }).map((e) => e.seq)).toEqual([1, 2]);

    s.ack(2);
    expect(fs.readFileSync(path.join(dir, 'cursor'), 'utf8')).toBe('2\n');
    expect(text(unacked(s, 2, ALL))).toEqual(['{"x":"drei ü"}']);
    expect(s.stats()).toEqual({ bytes: expect.any(Number), segments: 1, firstSeq: 1, lastSeq: 3, ackedSeq: 2, pending: 1, dropped: 0 });
    s.ack(1); // going back is ignored
    s.ack(99); // past the end is clamped
    expect(s.stats().ackedSeq).toBe(3);
    // Acknowledged records stay on disk for replay.
    expect(text([...s.entries()])).toEqual(['one', 'two', '{"x":"drei ü"}']);
    expect([...s.entries({ fromSeq: 3 })].map((e) => e.seq)).toEqual([3]);

    await s.close();
    // On disk: the documented framing, one segment named by its first seq.
    expect(segFiles(dir)).toEqual(['00000000000000000001.seg']);
    expect(fs.readFileSync(path.join(dir, '00000000000000000001.seg'))).toEqual(
      Buffer.concat([frame(1, 'one'), frame(2, 'two'), frame(3, '{"x":"drei ü"}')]),
    );
    expect(fs.existsSync(path.join(dir, 'lock'))).toBe(false);
  });

  it('rolls segments and reads across them', () => {
    const dir = tmpDir();
    const s = spool({ dir, segmentBytes: 100 });
    for (let i = 1; i <= 20; i++) s.append(`record number ${i}`);
    expect(segFiles(dir).length).toBeGreaterThan(3);
    expect(unacked(s, 0, ALL).map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const pages: number[] = [];
    for (let after = 0; ;) {
      const page = unacked(s, after, { records: 3, bytes: 1e6 });
      if (page.length === 0) break;
      pages.push(...page.map((e) => e.seq));
      after = page[page.length - 1].seq;
    }
    expect(pages).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('publishes bytes and pending records as gauges', () => {
    const metrics = new Metrics();
    const s = spool({ dir: tmpDir(), metrics });
    s.append('a');
    s.append('b');
    s.ack(1);
    expect(metrics.gauge(METRIC.spoolRecords, '').get()).toBe(1);
    expect(metrics.gauge(METRIC.spoolBytes, '').get()).toBe(2 * 17);
  });

  it('refuses a record that can never fit, and bad options, naming the field', () => {
    const s = spool({ dir: tmpDir(), maxBytes: 100, segmentBytes: 50 });
    expect(() => s.append('x'.repeat(200))).toThrow(/audit record of 200 bytes cannot fit in the spool \(maxBytes 100/);
    expect(() => spool({ dir: tmpDir(), maxBytes: 100, segmentBytes: 200 })).toThrow(
      /segmentBytes must be an integer above 16 and at most maxBytes \(100\), not 200/,
    );
    expect(() => spool({ dir: tmpDir(), whenFull: 'sometimes' as 'block' })).toThrow(/whenFull must be "block" or "drop-oldest"/);
  });
});

describe('recovery', () => {
  it('restores sequence numbers and the cursor after a restart', async () => {
    const dir = tmpDir();
    let s = spool({ dir, segmentBytes: 64 });
    for (let i = 1; i <= 6; i++) s.append(`r${i}`);
    s.ack(4);
    s = await reopen(s, { dir, segmentBytes: 64 });
    expect(s.stats()).toMatchObject({ lastSeq: 6, ackedSeq: 4, pending: 2 });
    expect(text(unacked(s, s.stats().ackedSeq, ALL))).toEqual(['r5', 'r6']);
    expect(s.append('r7')).toBe(7);
    s = await reopen(s, { dir, segmentBytes: 64 });
    expect(text(unacked(s, 4, ALL))).toEqual(['r5', 'r6', 'r7']);
  });

  it('continues after the cursor when every segment is gone', async () => {
    const dir = tmpDir();
    let s = spool({ dir });
    s.append('a');
    s.append('b');
    s.ack(2);
    await s.close();
    for (const f of segFiles(dir)) fs.rmSync(path.join(dir, f));
    s = spool({ dir });
    expect(s.append('c')).toBe(3);
  });

  it('cuts off a torn half-frame and garbage left by a crash, and takes over the stale lock', async () => {
    const dir = tmpDir();
    let s = spool({ dir });
    s.append('kept 1');
    s.append('kept 2');
    await s.close();
    const seg = path.join(dir, '00000000000000000001.seg');
    const good = fs.statSync(seg).size;
    fs.appendFileSync(seg, frame(3, 'torn record').subarray(0, 20));
    fs.appendFileSync(seg, Buffer.from('\x00\x00garbage\xff\xff'));
    // The crashed process's lock: a pid that no longer runs.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    fs.writeFileSync(path.join(dir, 'lock'), `${dead}\n`);

    const { log, lines } = capture();
    s = spool({ dir, log });
    expect(fs.statSync(seg).size).toBe(good);
    expect(text(unacked(s, 0, ALL))).toEqual(['kept 1', 'kept 2']);
    expect(s.append('after')).toBe(3);
    expect(lines.find((l) => l.level === 'warn' && /cut off/.test(l.msg))).toMatchObject({ file: seg, droppedBytes: 20 + 13 });
    expect(fs.readFileSync(path.join(dir, 'lock'), 'utf8')).toBe(`${process.pid}\n`);
  });

  it('treats an unreadable cursor as nothing acknowledged (resend rather than lose)', async () => {
    const dir = tmpDir();
    let s = spool({ dir });
    s.append('a');
    s.ack(1);
    await s.close();
    fs.writeFileSync(path.join(dir, 'cursor'), 'not a number');
    const { log, lines } = capture();
    s = spool({ dir, log });
    expect(s.stats().ackedSeq).toBe(0);
    expect(text(unacked(s, 0, ALL))).toEqual(['a']);
    expect(lines.some((l) => l.level === 'warn' && /cursor is unreadable/.test(l.msg))).toBe(true);
  });

  it('stops a damaged segment at the bad CRC, counts what is lost and continues with the next segment', async () => {
    const dir = tmpDir();
    let s = spool({ dir, segmentBytes: 3 * 20 });
    for (let i = 1; i <= 9; i++) s.append(`rec${i}`); // 20-byte frames: three per segment
    await s.close();
    expect(segFiles(dir)).toEqual(['00000000000000000001.seg', '00000000000000000004.seg', '00000000000000000007.seg']);
    const first = path.join(dir, '00000000000000000001.seg');
    const bytes = fs.readFileSync(first);
    bytes[20 + 16] ^= 0x20; // a payload byte of record 2
    fs.writeFileSync(first, bytes);

    const { log, lines } = capture();
    const metrics = new Metrics();
    s = spool({ dir, segmentBytes: 60, log, metrics });
    expect(text(unacked(s, 0, ALL))).toEqual(['rec1', 'rec4', 'rec5', 'rec6', 'rec7', 'rec8', 'rec9']);
    expect(s.stats()).toMatchObject({ dropped: 2, pending: 7, lastSeq: 9 });
    expect(metrics.counter(METRIC.spoolDropped, '').get({ reason: 'damaged' })).toBe(2);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({
      file: first,
      offset: 20,
      droppedBytes: 40,
      droppedRecords: 2,
      reason: 'checksum mismatch',
    });
    expect(fs.statSync(first).size).toBe(20);
  });
});

describe('size bound', () => {
  // 20-byte frames ("rec" + 1 digit); 3 per 60-byte segment; 120 bytes hold 6.
  const opts = { segmentBytes: 60, maxBytes: 120 };

  it('block: refuses when only unacknowledged data is left, and takes records again after an ack', () => {
    const metrics = new Metrics();
    const { log, lines } = capture();
    const s = spool({ dir: tmpDir(), ...opts, metrics, log });
    for (let i = 1; i <= 6; i++) expect(s.append(`rec${i}`)).toBe(i);
    expect(s.full).toBe(false);
    expect(s.append('rec7')).toBeUndefined();
    expect(s.append('rec7')).toBeUndefined();
    expect(s.full).toBe(true);
    expect(s.stats().bytes).toBeLessThanOrEqual(120);
    expect(metrics.counter(METRIC.spoolDropped, '').get({ reason: 'refused' })).toBe(2);
    expect(lines.filter((l) => l.level === 'warn' && /full/.test(l.msg))).toHaveLength(1);

    s.ack(2); // the first segment holds 1..3: not yet reclaimable
    expect(s.append('rec7')).toBeUndefined();
    s.ack(3);
    expect(s.full).toBe(false);
    expect(lines.filter((l) => /room again/.test(l.msg))).toEqual([expect.objectContaining({ refused: 3 })]);
    expect(s.append('rec7')).toBe(7);
    expect(s.stats()).toMatchObject({ firstSeq: 4, lastSeq: 7, pending: 4, dropped: 0 });
    expect(s.stats().bytes).toBeLessThanOrEqual(120);
  });

  it('drop-oldest: deletes the oldest unacknowledged segment and counts it', () => {
    const metrics = new Metrics();
    const { log, lines } = capture();
    const s = spool({ dir: tmpDir(), ...opts, whenFull: 'drop-oldest', metrics, log });
    const rec = (i: number): string => `r${String(i).padStart(3, '0')}`; // 20-byte frames
    s.append(rec(1));
    s.ack(1);
    for (let i = 2; i <= 10; i++) expect(s.append(rec(i))).toBe(i);
    // Record 7 needed the space of segment 1..3 (one acknowledged record, two not), record 10
    // that of segment 4..6.
    expect(s.full).toBe(false);
    expect(s.stats()).toMatchObject({ dropped: 5, firstSeq: 7, lastSeq: 10 });
    expect(text(unacked(s, 1, ALL))).toEqual([rec(7), rec(8), rec(9), rec(10)]);
    expect(metrics.counter(METRIC.spoolDropped, '').get({ reason: 'drop-oldest' })).toBe(5);
    const warns = lines.filter((l) => l.level === 'warn' && /dropped/.test(l.msg));
    expect(warns.map((l) => [l.dropped, l.fromSeq, l.toSeq])).toEqual([
      [2, 2, 3],
      [3, 4, 6],
    ]);
    expect(s.stats().bytes).toBeLessThanOrEqual(120);
  });

  it('switches from block to drop-oldest at once (a policy reload)', () => {
    const s = spool({ dir: tmpDir(), ...opts });
    for (let i = 1; i <= 6; i++) s.append(`rec${i}`);
    expect(s.append('rec7')).toBeUndefined();
    expect(s.full).toBe(true);
    s.whenFull = 'drop-oldest';
    expect(s.full).toBe(false);
    expect(s.append('rec7')).toBe(7);
    expect(s.stats()).toMatchObject({ dropped: 3, firstSeq: 4 });
    expect(() => (s.whenFull = 'never' as 'block')).toThrow(/whenFull must be "block" or "drop-oldest", not "never"/);
  });

  it('reclaims acknowledged segments first and keeps them for replay until then', () => {
    const dir = tmpDir();
    const s = spool({ dir, ...opts, whenFull: 'drop-oldest' });
    for (let i = 1; i <= 6; i++) s.append(`rec${i}`);
    s.ack(3);
    // Acknowledged but still there: replay sees them.
    expect([...s.entries()].map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(s.append('rec7')).toBe(7);
    expect(s.stats()).toMatchObject({ dropped: 0, firstSeq: 4, pending: 4 });
    expect(segFiles(dir)).toEqual(['00000000000000000004.seg', '00000000000000000007.seg']);
  });

  it('reclaims when the spool holds a single segment', () => {
    const s = spool({ dir: tmpDir(), maxBytes: 60, segmentBytes: 60 });
    for (let i = 1; i <= 3; i++) s.append(`rec${i}`);
    expect(s.append('rec4')).toBeUndefined();
    s.ack(3);
    expect(s.append('rec4')).toBe(4);
    expect(s.stats()).toMatchObject({ bytes: 20, segments: 1, firstSeq: 4 });
  });
});

describe('lock and directory', () => {
  it('lets one writer at a time use a directory and says who holds it', async () => {
    const dir = tmpDir();
    const s = spool({ dir });
    expect(() => spool({ dir })).toThrow(SpoolLockedError);
    expect(() => spool({ dir })).toThrow(/already open in this process/);
    await s.close();
    // Another live process's lock (our parent runs as long as we do).
    fs.writeFileSync(path.join(dir, 'lock'), `${process.ppid}\n`);
    expect(() => spool({ dir })).toThrow(`audit spool directory ${dir} is in use by process ${process.ppid}`);
    // Our own pid in a lock we do not hold: a restarted container (pid reuse), stale.
    fs.writeFileSync(path.join(dir, 'lock'), `${process.pid}\n`);
    expect(spool({ dir }).append('x')).toBe(1);
  });

  it('refuses a directory it cannot create', () => {
    const file = path.join(tmpDir(), 'a-file');
    fs.writeFileSync(file, '');
    let err: unknown;
    try {
      spool({ dir: path.join(file, 'spool') });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpoolError);
    expect((err as SpoolError).code).toBe('SPOOL_DIR');
    expect((err as Error).message).toMatch(/cannot create audit spool directory .*a-file\/spool \(ENOTDIR/);
  });

  it('refuses appends after close', async () => {
    const s = spool({ dir: tmpDir() });
    await s.close();
    expect(() => s.append('x')).toThrow(/is closed/);
  });
});

describe('fsync batching', () => {
  afterEach(() => jest.restoreAllMocks());

  it('fsyncs at most once per interval under load, never on the append path, and on flush', async () => {
    const fsync = jest.spyOn(fs, 'fsync');
    const fsyncSync = jest.spyOn(fs, 'fsyncSync');
    // One segment: each batch then fsyncs exactly one file.
    const s = spool({ dir: tmpDir(), fsyncIntervalMs: 50, maxBytes: 256 << 20, segmentBytes: 256 << 20 });
    fsyncSync.mockClear();
    const started = Date.now();
    let n = 0;
    while (Date.now() - started < 400) {
      for (let i = 0; i < 50; i++) s.append(`record ${n++}`);
      await new Promise((r) => setImmediate(r));
    }
    const elapsed = Date.now() - started;
    const calls = fsync.mock.calls.length;
    expect(n).toBeGreaterThan(1000);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(Math.ceil(elapsed / 50) + 1);
    expect(fsyncSync).not.toHaveBeenCalled();
    s.append('last');
    await s.flush();
    expect(fsync.mock.calls.length).toBe(calls + 1);
  });
});

describe('read-only reading (warden replay)', () => {
  it('reads a spool that a writer holds, tolerating a frame being written', async () => {
    const dir = tmpDir();
    const s = spool({ dir, segmentBytes: 40 });
    for (let i = 1; i <= 5; i++) s.append(`rec${i}`);
    s.ack(2);
    expect(text([...readSpoolDir(dir)])).toEqual(['rec1', 'rec2', 'rec3', 'rec4', 'rec5']);
    expect([...readSpoolDir(dir, 4)].map((e) => e.seq)).toEqual([4, 5]);
    await s.close();
    fs.appendFileSync(path.join(dir, segFiles(dir).pop()!), frame(6, 'rec6').subarray(0, 10));
    expect([...readSpoolDir(dir)].map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('property: append / ack / reopen / read', () => {
  type Cmd = { t: 'append'; size: number } | { t: 'ack'; frac: number } | { t: 'reopen' } | { t: 'read'; records: number; bytes: number };
  const cmd = fc.oneof(
    { arbitrary: fc.record({ t: fc.constant('append' as const), size: fc.integer({ min: 0, max: 80 }) }), weight: 6 },
    { arbitrary: fc.record({ t: fc.constant('ack' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }), weight: 2 },
    { arbitrary: fc.record({ t: fc.constant('reopen' as const) }), weight: 1 },
    {
      arbitrary: fc.record({
        t: fc.constant('read' as const),
        records: fc.integer({ min: 1, max: 8 }),
        bytes: fc.integer({ min: 1, max: 600 }),
      }),
      weight: 2,
    },
  );

  it('never loses an unacknowledged record and never returns one twice', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { maxLength: 60, size: 'max' }), async (cmds: Cmd[]) => {
        const dir = tmpDir(SHM);
        const opts = { dir, maxBytes: 600, segmentBytes: 150 };
        let s = spool(opts);
        const model = new Map<number, string>();
        let acked = 0;
        const readAll = (records: number, bytes: number): void => {
          const seen: number[] = [];
          for (let after = acked; ;) {
            const page = unacked(s, after, { records, bytes });
            if (page.length === 0) break;
            for (const e of page) {
              expect(e.seq).toBeGreaterThan(after);
              expect(e.payload.toString()).toBe(model.get(e.seq));
              seen.push(e.seq);
              after = e.seq;
            }
          }
          expect(seen).toEqual([...model.keys()].filter((k) => k > acked));
        };
        for (const c of cmds) {
          if (c.t === 'append') {
            const payload = `${model.size}:${'p'.repeat(c.size)}`;
            const seq = s.append(payload);
            if (seq !== undefined) {
              expect(seq).toBeGreaterThan(Math.max(acked, ...model.keys()));
              model.set(seq, payload);
            }
          } else if (c.t === 'ack') {
            const pending = [...model.keys()].filter((k) => k > acked);
            if (pending.length > 0) {
              acked = pending[Math.floor(c.frac * (pending.length - 1))];
              s.ack(acked);
            }
          } else if (c.t === 'reopen') {
            s = await reopen(s, opts);
            expect(s.stats().ackedSeq).toBe(acked);
          } else {
            readAll(c.records, c.bytes);
          }
          expect(s.stats().bytes).toBeLessThanOrEqual(600);
        }
        readAll(1000, 1e9);
        s = await reopen(s, opts);
        readAll(3, 400);
      }),
      { numRuns: 40 },
    );
  });
});

test('a spool directory that cannot be created is a clear error, not a hang (mkdir under /proc)', () => {
  expect(() => Spool.open({ dir: '/proc/warden-no-such-dir/spool', maxBytes: 1 << 20, whenFull: 'block', log: silentLogger })).toThrow(
    /cannot create audit spool directory \/proc\/warden-no-such-dir\/spool \(ENOENT: no such file/,
  );
});
