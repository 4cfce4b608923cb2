// The acknowledged-sequence cursor: one decimal number in `DIR/cursor`, replaced atomically (write a
// temporary file, rename it over the old one) so a crash leaves the old value or the new one.
// Deliberately not fsync'd: it moves on every export batch, on the event loop, and a cursor that
// falls back after a power loss only re-sends records the collector already has (deduplicable by
// id) — measured, the two fsyncs per batch cost more than the whole audit export.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../common/log';

export const CURSOR_FILE = 'cursor';
const CURSOR_TMP = 'cursor.tmp';

/**
 * The acknowledged sequence number, 0 when none. An unreadable cursor also reads as 0: every record
 * still on disk is then sent again, which the collector deduplicates by record id. Losing records
 * would be worse than repeating them.
 */
export function readCursor(dir: string, log: Logger): number {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, CURSOR_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  const m = /^(\d{1,16})\n?$/.exec(text);
  const n = m ? Number(m[1]) : NaN;
  if (!Number.isSafeInteger(n)) {
    log.warn('audit spool cursor is unreadable: records still in the spool will be sent again', {
      file: path.join(dir, CURSOR_FILE),
      bytes: text.length,
    });
    return 0;
  }
  return n;
}

export function writeCursor(dir: string, seq: number): void {
  const tmp = path.join(dir, CURSOR_TMP);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, `${seq}\n`);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path.join(dir, CURSOR_FILE));
}

/** Makes creations, renames and deletions of files in `dir` durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A temporary cursor left by a crash mid-write is never the current one. */
export function removeStaleCursorTmp(dir: string): void {
  fs.rmSync(path.join(dir, CURSOR_TMP), { force: true });
}
