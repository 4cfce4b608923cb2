// Reads credentials in the layout Kubernetes uses for a mounted Secret: DIR/<secret>/<key>.
// Files are read at each use, so a Secret rotated in place (Kubernetes swaps a symlink) applies to
// the next upstream connection without a restart. Values never appear in errors.
import * as fs from 'node:fs';
import * as path from 'node:path';

export class SecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretError';
  }
}

const NAME = /^[a-zA-Z0-9]([-._a-zA-Z0-9]*[a-zA-Z0-9])?$/;

export class SecretStore {
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
    let raw: string;
    try {
      raw = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new SecretError(`cannot read credential "${key}" of secret "${secret}": ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    // `echo value > file` adds a newline that is not part of the secret.
    return raw.replace(/\r?\n$/, '');
  }
}
