// Reads credentials in the layout Kubernetes uses for a mounted Secret: DIR/<secret>/<key>.
// A value is cached and re-read only when its file changed, so a Secret rotated in place applies
// to the very next request without a restart, and a request does not pay for reading a file.
//
// Change detection: each lookup stats the path (one syscall, following the symlinks) and compares
// device, inode, size, mtime and ctime with the ones the value was read under. Kubernetes rotates
// by writing a new directory and swapping the `..data` symlink: the path then resolves to another
// inode. A plain overwrite changes mtime (and usually size). A chmod or deletion changes ctime or
// fails the stat, so an unreadable or deleted credential fails closed on the next lookup. File
// timestamps are coarse (a kernel tick; seconds on some filesystems), so two writes within one
// tick could leave the same signature: a value read less than RACY_MS after its file's mtime is
// not trusted and is read again (git's "racily clean" rule), until the file has been still that long.
// Values never appear in errors.
import * as fs from 'node:fs';
import * as path from 'node:path';

export class SecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretError';
  }
}

const NAME = /^[a-zA-Z0-9]([-._a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** A file modified this recently (ms) before it was read may change again with the same timestamp. */
const RACY_MS = 2_000;

interface Cached {
  value: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Whether the signature can be trusted (the file had been still for RACY_MS when it was read). */
  settled: boolean;
}

export class SecretStore {
  private readonly cache = new Map<string, Cached>();

  constructor(readonly dir: string | undefined) {}

  read(secret: string, key: string): string {
    const value = this.readOptional(secret, key);
    if (value === undefined) throw new SecretError(`credential "${key}" of secret "${secret}" is missing`);
    return value;
  }

  readOptional(secret: string, key: string): string | undefined {
    if (!this.dir) throw new SecretError(`secret "${secret}" is needed but the sidecar has no --secrets-dir`);
    if (!NAME.test(secret) || !NAME.test(key)) throw new SecretError(`invalid secret reference "${secret}/${key}"`);
    const file = path.join(this.dir, secret, key);
    // Number stats (sub-microsecond timestamps): cheaper than bigint ones, precise enough to tell writes apart.
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(file, { throwIfNoEntry: false });
    } catch (err) {
      this.cache.delete(file);
      throw new SecretError(`cannot read credential "${key}" of secret "${secret}": ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (st === undefined) {
      this.cache.delete(file);
      return undefined;
    }
    const c = this.cache.get(file);
    if (
      c &&
      c.settled &&
      c.ino === st.ino &&
      c.dev === st.dev &&
      c.size === st.size &&
      c.mtimeMs === st.mtimeMs &&
      c.ctimeMs === st.ctimeMs
    )
      return c.value;
    const now = Date.now();
    let raw: string;
    try {
      raw = fs.readFileSync(file, 'utf8');
    } catch (err) {
      this.cache.delete(file);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new SecretError(`cannot read credential "${key}" of secret "${secret}": ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    // `echo value > file` adds a newline that is not part of the secret.
    const value = raw.replace(/\r?\n$/, '');
    const settled = now - st.mtimeMs > RACY_MS && now - st.ctimeMs > RACY_MS;
    this.cache.set(file, { value, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, settled });
    return value;
  }
}
