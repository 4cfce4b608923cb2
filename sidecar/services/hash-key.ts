// The key the masking `hash` strategy uses (HMAC), from the optional Secret warden-masking/hash-key.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../../common/log';
import type { SecretStore } from '../secrets';

export function hashKeyFrom(secrets: SecretStore, log: Logger): Buffer {
  let k: string | undefined;
  try {
    k = secrets.dir ? secrets.readOptional('warden-masking', 'hash-key') : undefined;
  } catch (err) {
    // An unreadable key is not a missing one: say so, then fall back rather than refuse to start.
    log.error('cannot read the masking hash key; using a per-process key', { error: (err as Error).message });
  }
  // Any length of key material works; HMAC wants a fixed-size key.
  if (k) return createHash('sha256').update(k).digest();
  log.warn('no masking hash key (secret warden-masking/hash-key): hashes are consistent only within this process');
  return randomBytes(32);
}
