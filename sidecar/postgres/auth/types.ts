import type { AuthenticationMessage } from '../protocol/backend';

export interface Credentials {
  username: string;
  password: string;
}

/** One authentication method: given the server's request, the bytes to answer with (none when done). */
export interface AuthMethod {
  respond(msg: AuthenticationMessage): Buffer | null;
  /** Whether the exchange reached its end, so AuthenticationOk may be trusted (SCRAM: server signature verified). */
  complete(): boolean;
}

export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthError';
  }
}
