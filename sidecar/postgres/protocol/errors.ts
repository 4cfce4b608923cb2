// Errors raised by the pure codec. `code` is stable so callers can map it to a SQLSTATE.
export type ProtocolErrorCode = 'protocol_violation' | 'message_too_large';

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;

  constructor(message: string, code: ProtocolErrorCode = 'protocol_violation') {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}
