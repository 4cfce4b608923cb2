import { createHash } from 'node:crypto';
import { encodePassword } from '../protocol/frontend';
import type { AuthMethod, Credentials } from './types';
import { AuthError } from './types';

const md5hex = (b: Buffer | string): string => createHash('md5').update(b).digest('hex');

export function md5Auth(creds: Credentials): AuthMethod {
  let sent = false;
  return {
    complete: () => sent,
    respond(msg) {
      if (sent || msg.name !== 'authMd5') throw new AuthError(`unexpected ${msg.name} during md5 authentication`);
      sent = true;
      const inner = md5hex(creds.password + creds.username);
      return encodePassword('md5' + md5hex(Buffer.concat([Buffer.from(inner), msg.salt])));
    },
  };
}
