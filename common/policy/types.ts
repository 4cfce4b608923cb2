// The AccessPolicy document as users write it (apiVersion agentwarden.io/v1alpha1).
// crds/accesspolicy.yaml is the source of truth for the shape; these types mirror it.

export type RuleAction = 'allow' | 'deny' | 'hold';
export type DefaultAction = 'allow' | 'deny';
export type TlsMode = 'disable' | 'prefer' | 'require' | 'verify-full';
export type MaskStrategy = 'redact' | 'last4' | 'hash';
export type DetectorName = 'credit-card' | 'email' | 'us-ssn' | 'phone' | 'iban' | 'secret-key';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

export interface PostgresTargetSpec {
  host: string;
  port?: number;
  database: string;
  tls?: TlsMode;
  /** Secret with keys `username`, `password` (and optionally `ca.crt` for verify-full). */
  credentialsSecret: string;
  listenPort: number;
  /**
   * What to do with a statement the PostgreSQL parser rejects as a syntax error: `deny` (the
   * default, whatever defaultAction says) or `allow`. A parser failure is denied either way.
   */
  unparseable?: DefaultAction;
  connectTimeout?: string;
  /** Every upstream session runs with default_transaction_read_only = on; turning it off is refused. */
  readOnly?: boolean;
  /** Upstream connections the sidecar opens for this target (one kept for its catalog connection); default 20. */
  maxConnections?: number;
  /** The largest statement (Query or Parse message) the sidecar classifies, bytes; larger gets 54000. */
  maxStatementBytes?: number;
}

export interface HttpAuthSpec {
  header?: string;
  valuePrefix?: string;
  queryParam?: string;
  basic?: boolean;
}

export interface HttpTargetSpec {
  baseUrl: string;
  credentialsSecret?: string;
  auth?: HttpAuthSpec;
  timeout?: string;
  /** Request body limit and buffered-response limit, bytes. */
  maxBodyBytes?: number;
  /** A response that must be masked but cannot be parsed: blocked (deny, default) or passed unmasked. */
  unparseable?: DefaultAction;
}

/** A tool definition the policy vouches for: `fingerprint` as the sidecar reports it (`sha256:<64 hex>`). */
export interface McpToolPin {
  tool: string;
  fingerprint: string;
}

/**
 * An MCP server reached over streamable HTTP. The agent's endpoint is
 * `http://127.0.0.1:<egress>/<target>`; every JSON-RPC message is judged by `match.mcp` rules.
 */
export interface McpTargetSpec {
  /** The server's streamable-HTTP endpoint (http or https). */
  url: string;
  /** Secret with key `token`, injected as `auth` says (the agent's own Authorization is dropped). */
  credentialsSecret?: string;
  auth?: HttpAuthSpec;
  timeout?: string;
  /** Request body limit and buffered-response limit, bytes. */
  maxBodyBytes?: number;
  /** Hide and refuse a tool whose definition changed since first listed (default true). */
  pinToolDefinitions?: boolean;
  /** Definitions the policy vouches for; a pinned tool must match its pin from the first listing on. */
  pins?: McpToolPin[];
}

export interface TargetSpec {
  name: string;
  postgres?: PostgresTargetSpec;
  http?: HttpTargetSpec;
  mcp?: McpTargetSpec;
  env?: string;
}

export interface SqlMatch {
  statements?: string[];
  tables?: string[];
  functions?: string[];
}

export interface HttpMatch {
  methods?: string[];
  paths?: string[];
  hosts?: string[];
  headers?: Record<string, string>;
  json?: Array<{ path: string; values?: string[] }>;
  /**
   * Conditions on what the upstream returns (the JSON body, or each event's JSON data of an
   * event stream). Only on deny rules; such a rule is skipped when the request is decided and
   * checked by decideResponse instead. Enforced on named routes only.
   */
  response?: { json: Array<{ path: string; values?: string[] }> };
}

/**
 * Conditions on one MCP JSON-RPC message. `tools` (name globs) and `arguments` (paths relative to
 * the call's arguments object, the shape of `http.json`) only match `tools/call`.
 */
export interface McpMatch {
  methods?: string[];
  tools?: string[];
  arguments?: Array<{ path: string; values?: string[] }>;
}

export interface RuleMatch {
  target?: string;
  sql?: SqlMatch;
  http?: HttpMatch;
  mcp?: McpMatch;
  subjects?: string[];
  groups?: string[];
}

export interface ApprovalSpec {
  approvers?: { users?: string[]; groups?: string[] };
  timeout?: string;
  count?: number;
}

export interface RuleSpec {
  name: string;
  action: RuleAction;
  match: RuleMatch;
  approval?: ApprovalSpec;
  message?: string;
}

export interface MaskingSpec {
  name: string;
  detectors?: DetectorName[];
  columns?: string[];
  jsonPaths?: string[];
  strategy?: MaskStrategy;
  targets?: string[];
  /** HTTP bodies: response (default), request, or both. */
  direction?: 'response' | 'request' | 'both';
}

export interface AccessPolicySpec {
  podSelector?: LabelSelector;
  /** Iptables fence around the app containers' egress (injected pods). */
  lockdown?: boolean;
  defaultAction?: DefaultAction;
  targets: TargetSpec[];
  rules?: RuleSpec[];
  masking?: MaskingSpec[];
  audit?: { payloads?: boolean; whenSpoolFull?: 'block' | 'drop-oldest' };
  identity?: IdentitySpec;
}

/**
 * `spec.identity`: callers present a short-lived JWT (the PostgreSQL password, or an HTTP
 * `Authorization`/`Proxy-Authorization` bearer token) that the sidecar verifies. Exactly one of
 * `issuer` (an external OIDC issuer, keys by discovery) and `kubernetes` (this cluster's projected
 * service-account tokens, keys handed over by the operator).
 */
export interface IdentitySpec {
  /** Issuer URL (https), exactly as in the tokens' `iss` claim. */
  issuer?: string;
  /** Accepted `aud` values (with `issuer`); a token must carry at least one of them. */
  audiences?: string[];
  /** This cluster's service-account tokens. */
  kubernetes?: KubernetesIdentitySpec;
  /** JWKS URL; defaults to `jwks_uri` from `issuer + /.well-known/openid-configuration`. */
  jwksUri?: string;
  /** Claim holding the caller's subject; defaults to `sub`. */
  subjectClaim?: string;
  /** Claim holding the caller's groups (array, or space-separated string); defaults to `groups`. */
  groupsClaim?: string;
  /** Tolerated clock difference for exp/nbf/iat, as a duration; defaults to 30s, at most 5m. */
  clockSkew?: string;
  /** Reject tokens issued (`iat`) longer ago than this duration, whatever their exp. */
  maxTokenAge?: string;
}

/** `spec.identity.kubernetes`: projected service-account tokens issued by this cluster's API server. */
export interface KubernetesIdentitySpec {
  /** Accepted `aud` values; a token must carry at least one. The first is the one injected pods are given. */
  audiences: string[];
}

export interface AccessPolicy {
  apiVersion: 'agentwarden.io/v1alpha1';
  kind: 'AccessPolicy';
  metadata: { name: string; namespace?: string; generation?: number; [k: string]: unknown };
  spec: AccessPolicySpec;
}

/** Who is calling, as far as the sidecar knows. */
export interface Identity {
  subject: string;
  groups: string[];
  /** How the identity was established: the pod's own, or a verified token. */
  source: 'pod' | 'token' | 'local';
}

/** A classified SQL statement: everything a rule can match on. */
export interface SqlStatementInfo {
  /** Top-level command, upper case: SELECT, INSERT, DELETE, DROP, DO, ... */
  kind: string;
  /** Every command kind the statement would run, nested ones included (writable CTEs, EXPLAIN ANALYZE, COPY (...)). */
  kinds: string[];
  /** Relations referenced, lower case, as written (`customers`) and schema-qualified when written so (`public.customers`). */
  tables: string[];
  /** Functions called, lower case, without schema (`pg_read_file`) plus the qualified form when written so. */
  functions: string[];
  /** Column names referenced anywhere, lower case, used to catch masked columns hidden in expressions. */
  columns: string[];
  /** `PREPARE name AS ...`: the name, and the classification of the prepared statement alone. */
  prepares?: string;
  preparedBody?: SqlStatementInfo;
  /** `EXECUTE name`: judged by what was prepared under that name. */
  executes?: string;
  /** `DEALLOCATE name` (or `*` for ALL). */
  deallocates?: string;
  /** COPY direction, when kind is COPY. */
  copy?: 'to' | 'from';
  /**
   * Runs SQL the classifier cannot see (DYNAMIC with non-literal text: `query_to_xml($1, ...)`,
   * EXECUTE of a computed string, a DO body it cannot read). Restrictive rules that name
   * statements, classes, tables or functions match it whatever it shows.
   */
  opaque?: boolean;
  /** What in it could turn a read-only session read-write (`SET default_transaction_read_only = off`, `BEGIN READ WRITE`). */
  readWrite?: string[];
  /** A whole row is read as one value (`SELECT c FROM customers c`, `to_jsonb(c)`, `c.*` inside an expression): every column of it is read. */
  wholeRow?: true;
  /** Stores what a query reads into a relation (CREATE TABLE AS, SELECT INTO, CREATE VIEW, INSERT ... SELECT, MERGE, CREATE RULE). */
  stores?: true;
  /** A `*` column reference somewhere (`SELECT *` reads every column, masked ones included). */
  star?: true;
  /** UPDATE: column names read by the SET values (`SET notes = card_number`). */
  setColumns?: string[];
  /** Relations a RENAME or SET SCHEMA renames or moves (their columns too), as written; `schema:<name>` for a renamed schema. */
  renames?: string[];
  /** Relations a CREATE TRIGGER attaches a trigger to, as written (its function gets their whole rows). */
  triggers?: string[];
  /** CREATE FUNCTION / PROCEDURE: `kinds` and `functions` include what its body runs. */
  definesFunction?: true;
  /** `COPY ... TO`: a SELECT with the same output columns (described to mask the rows by column) and the COPY's data format options. */
  copyOut?: CopyOutInfo;
}

export interface CopyOutInfo {
  select: string;
  /** `COPY table TO` without a column list: every column except generated ones (which `select` includes). */
  wholeTable?: true;
  format: 'text' | 'csv' | 'binary';
  delimiter?: string;
  quote?: string;
  escape?: string;
  null?: string;
  header?: boolean;
  /** The ENCODING option as written: the rows are converted to it, not to the session's UTF8. */
  encoding?: string;
}

export interface SqlOperation {
  type: 'sql';
  target: string;
  /** Empty when `parseError` is set. */
  statements: SqlStatementInfo[];
  parseError?: string;
  /** With parseError: not a syntax error but a failure or limit of the parser; denied even with `unparseable: allow`. */
  parserFailure?: boolean;
}

export interface HttpOperation {
  type: 'http';
  target: string;
  method: string;
  path: string;
  host?: string;
  headers: Record<string, string | string[] | undefined>;
  json?: unknown;
}

/** One MCP JSON-RPC message from the agent (each message of a batch is its own operation). */
export interface McpOperation {
  type: 'mcp';
  target: string;
  /** The JSON-RPC method (`tools/call`, `tools/list`, `resources/read`, `notifications/initialized`); `''` for a response the client sends. */
  method: string;
  /** `tools/call`: params.name. */
  tool?: string;
  /** `tools/call`: params.arguments (undefined when absent). */
  arguments?: unknown;
  /** `resources/read`: params.uri; `prompts/get`: params.name (for audit and display). */
  resource?: string;
}

export type Operation = SqlOperation | HttpOperation | McpOperation;

export interface Decision {
  action: RuleAction;
  /** Name of the rule that decided; undefined when the default action applied. */
  rule?: string;
  /** Human-readable reason: what the agent is told on a denial. */
  reason: string;
  approval?: ApprovalSpec;
}
