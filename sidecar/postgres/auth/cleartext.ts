import { encodePassword } from '../protocol/frontend';
import type { AuthMethod, Credentials } from './types';
import { AuthError } from './types';

export function cleartextAuth(creds: Credentials): AuthMethod {
  let sent = false;
  return {
    complete: () => sent,
    respond(msg) {
      // Send the password once: a server asking again is not following the protocol.
      if (sent || msg.name !== 'authCleartext') throw new AuthError(`unexpected ${msg.name} during cleartext authentication`);
      sent = true;
      return encodePassword(creds.password);
    },
  };
}
