// Message type bytes (PostgreSQL protocol 3.0).
export const FE = {
  Query: 0x51, // Q
  Parse: 0x50, // P
  Bind: 0x42, // B
  Execute: 0x45, // E
  Describe: 0x44, // D
  Close: 0x43, // C
  Sync: 0x53, // S
  Flush: 0x48, // H
  Terminate: 0x58, // X
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  FunctionCall: 0x46, // F
  Password: 0x70, // p (also SASLInitialResponse, SASLResponse, GSSResponse)
} as const;

export const BE = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  CopyBothResponse: 0x57, // W
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;

/** Startup-phase request codes carried in the protocol-version field. */
export const STARTUP = {
  Protocol30: 196608,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
  CancelRequest: 80877102,
} as const;
