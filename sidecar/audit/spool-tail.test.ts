import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../common/log';
import { readCursor } from './cursor';
import { Spool } from './spool';
import { SpoolTail } from './spool-tail';

const dirs: string[] = [];
const spools: Spool[] = [];

function openSpool(over: { maxBytes?: number; segmentBytes?: number; whenFull?: 'block' | 'drop-oldest' } = {}): Spool {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-tail-'));
  dirs.push(dir);
  const s = Spool.open({
    dir,
    maxBytes: over.maxBytes ?? 1 << 20,
    segmentBytes: over.segmentBytes,
    whenFull: over.whenFull ?? 'block',
    log: silentLogger,
  });
  spools.push(s);
  return s;
}

afterEach(async () => {
  for (const s of spools.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const payloads = (entries: Array<{ payload: Buffer }>): string[] => entries.map((e) => e.payload.toString());

describe('SpoolTail (the export thread reading the spool the main thread writes)', () => {
  test('reads what was appended, across segments, in batches, resuming where it stopped', () => {
    const spool = openSpool({ segmentBytes: 200 });
    const tail = new SpoolTail(spool.dir, spool.shareProgress(), silentLogger);
    expect(tail.readUnacked(0, { records: 10, bytes: 1 << 20 })).toEqual([]);
    for (let i = 1; i <= 12; i++) spool.append(`record-${i}-${'x'.repeat(40)}`);
    const first = tail.readUnacked(0, { records: 5, bytes: 1 << 20 });
    expect(first.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    tail.ack(5);
    const rest = tail.readUnacked(5, { records: 100, bytes: 1 << 20 });
    expect(rest.map((e) => e.seq)).toEqual([6, 7, 8, 9, 10, 11, 12]);
    expect(payloads(rest)[0]).toMatch(/^record-6-/);
    // A failed export reads the same batch again.
    expect(tail.readUnacked(5, { records: 100, bytes: 1 << 20 }).map((e) => e.seq)).toEqual(rest.map((e) => e.seq));
  });

  test('an acknowledgement reaches the main thread through the shared mark: cursor on disk, stats, and a full spool takes records again', () => {
    const spool = openSpool({ maxBytes: 400, segmentBytes: 100, whenFull: 'block' });
    const tail = new SpoolTail(spool.dir, spool.shareProgress(), silentLogger);
    let last = 0;
    for (let i = 0; i < 50; i++) {
      const seq = spool.append(`r${i}-${'y'.repeat(50)}`);
      if (seq === undefined) break;
      last = seq;
    }
    expect(spool.full).toBe(true);
    expect(spool.stats().pending).toBe(last);
    tail.ack(last);
    expect(readCursor(spool.dir, silentLogger)).toBe(last);
    expect(spool.stats().ackedSeq).toBe(last);
    expect(spool.full).toBe(false);
    expect(spool.append('after')).toBe(last + 1);
  });

  test('the cursor file follows the shared mark at most once a second, and on close', () => {
    const spool = openSpool();
    const tail = new SpoolTail(spool.dir, spool.shareProgress(), silentLogger);
    for (let i = 1; i <= 5; i++) spool.append(`c${i}`);
    tail.ack(2);
    tail.ack(4);
    expect(spool.stats().ackedSeq).toBe(4); // the main thread sees it at once
    expect(readCursor(spool.dir, silentLogger)).toBe(2); // the file lags (a restart re-sends, never loses)
    tail.close();
    expect(readCursor(spool.dir, silentLogger)).toBe(4);
  });

  test('records dropped by the writer (drop-oldest) are skipped, not waited for', () => {
    const spool = openSpool({ maxBytes: 400, segmentBytes: 100, whenFull: 'drop-oldest' });
    const tail = new SpoolTail(spool.dir, spool.shareProgress(), silentLogger);
    for (let i = 1; i <= 30; i++) spool.append(`d${i}-${'z'.repeat(50)}`);
    const got = tail.readUnacked(0, { records: 100, bytes: 1 << 20 });
    expect(got.length).toBeGreaterThan(0);
    expect(got[got.length - 1].seq).toBe(30);
    expect(got[0].seq).toBe(spool.stats().firstSeq);
  });

  test('a new reader (a restarted thread) starts from the acknowledged mark', () => {
    const spool = openSpool();
    const shared = spool.shareProgress();
    for (let i = 1; i <= 6; i++) spool.append(`n${i}`);
    new SpoolTail(spool.dir, shared, silentLogger).ack(4);
    const again = new SpoolTail(spool.dir, shared, silentLogger);
    expect(again.stats()).toEqual({ ackedSeq: 4, lastSeq: 6 });
    expect(payloads(again.readUnacked(again.stats().ackedSeq, { records: 10, bytes: 1 << 20 }))).toEqual(['n5', 'n6']);
  });
});
