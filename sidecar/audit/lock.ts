// One writer per spool directory: an exclusive `lock` file holding the owner's pid. A lock whose
// pid is not running is stale (the owner crashed) and is taken over. A container restart often
// reuses the same pid (pid 1 in its own namespace), so a lock carrying our own pid that this process
// does not hold is stale too.
import fs from 'node:fs';
import path from 'node:path';

export const LOCK_FILE = 'lock';

/** Directories this process holds a lock on (resolved paths). */
const held = new Set<string>();

export class SpoolLockedError extends Error {
  readonly code = 'SPOOL_LOCKED';

  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      pid === process.pid
        ? `audit spool directory ${dir} is already open in this process`
        : `audit spool directory ${dir} is in use by process ${pid} (lock file ${path.join(dir, LOCK_FILE)}); only one sidecar may write a spool`,
    );
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Takes the directory's lock or throws SpoolLockedError; returns the release function. */
export function acquireLock(dir: string): () => void {
  const key = path.resolve(dir);
  if (held.has(key)) throw new SpoolLockedError(dir, process.pid);
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, `${process.pid}\n`);
      } finally {
        fs.closeSync(fd);
      }
      held.add(key);
      return () => {
        held.delete(key);
        fs.rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(file);
    // No pid yet: another process is between creating and writing the file.
    if (owner === undefined && attempt === 0) continue;
    if (owner !== undefined && owner !== process.pid && isRunning(owner)) throw new SpoolLockedError(dir, owner);
    // Stale. Removing and re-creating races with another process doing the same; 'wx' picks one.
    fs.rmSync(file, { force: true });
  }
  throw new SpoolLockedError(dir, readOwner(file) ?? 0);
}
