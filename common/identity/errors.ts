// Why a caller's token was refused. The code is stable (audit records, metrics and tests key on
// it); the message says which check failed in words an operator can act on. Neither ever contains
// the token itself.

export type IdentityErrorCode =
  | 'missing_token'
  | 'malformed_token'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_signature'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'unknown_key'
  | 'jwks_unavailable'
  | 'too_old'
  /** spec.identity.kubernetes in an injected pod: the token belongs to another service account. */
  | 'foreign_token';

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  constructor(
    readonly code: IdentityErrorCode,
    message: string,
  ) {
    super(message);
  }
}
