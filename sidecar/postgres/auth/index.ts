import type { AuthenticationMessage } from '../protocol/backend';
import { cleartextAuth } from './cleartext';
import { md5Auth } from './md5';
import { scramSha256Auth } from './scram';
import type { AuthMethod, Credentials } from './types';
import { AuthError } from './types';

export { AuthError } from './types';
export type { AuthMethod, Credentials } from './types';

/** Picks the method from the server's first authentication request. */
export function authMethodFor(first: AuthenticationMessage, creds: Credentials): AuthMethod {
  switch (first.name) {
    case 'authSasl':
      return scramSha256Auth(creds);
    case 'authMd5':
      return md5Auth(creds);
    case 'authCleartext':
      return cleartextAuth(creds);
    default:
      throw new AuthError(
        `server requested an unsupported authentication method (${first.name === 'authOther' ? `code ${first.code}` : first.name})`,
      );
  }
}
