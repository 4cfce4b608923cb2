import { encodePassword } from '../protocol/frontend';
import type { AuthMethod, Credentials } from './types';

export function cleartextAuth(creds: Credentials): AuthMethod {
  return { respond: () => encodePassword(creds.password) };
}
