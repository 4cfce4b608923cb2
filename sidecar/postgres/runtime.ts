// What a PostgreSQL session needs from the sidecar around it. The listener builds one per target;
// the policy, target spec and masking are read on every statement so hot reloads apply at once.
import type { CompiledPolicy } from '../../common/policy/compile';
import type { Identity, PostgresTargetSpec, SqlOperation } from '../../common/policy/types';
import type { CatalogCache } from './catalog';
import type { CancelRegistry } from './cancel-registry';
import type { ConnectionSlots } from './connection-slots';
import type { TargetMasking } from './row-masking';
import type { ShapeCache } from './shape-cache';
import type { UpstreamOptions } from './upstream';
import type { LargeMessageBudget } from './protocol/frame-reader';
import type { AuditSink } from '../audit/events';
import type { ApprovalGate } from '../approvals/hold';

export interface ClassifiedSql {
  statements: SqlOperation['statements'];
  parseError?: string;
  /** With parseError: the parser failed or refused (limit, crash, timeout), not a syntax error. */
  parserFailure?: boolean;
}

export interface TargetRuntime {
  readonly target: string;
  policy(): CompiledPolicy;
  spec(): PostgresTargetSpec;
  masking(): TargetMasking | undefined;
  /** Synchronous for a cache hit; a miss resolves when the parser worker answers (never rejects: failures are refusals). */
  classify(text: string): ClassifiedSql | Promise<ClassifiedSql>;
  /** The largest Query/Parse body classified (targets[].postgres.maxStatementBytes or its default). */
  maxStatementBytes(): number;
  upstreamOptions(params: Record<string, string>): UpstreamOptions;
  readonly catalog: CatalogCache;
  readonly shapes: ShapeCache;
  readonly cancels: CancelRegistry;
  /** The pod's own identity: every session's, unless the policy asks callers for a token. */
  readonly identity: Identity;
  /**
   * Set when the policy has `spec.identity`: the agent must send a JWT as its password, verified
   * here before the sidecar connects upstream. Rejects with an IdentityError naming the failed check.
   */
  readonly verifyToken?: (token: string) => Promise<Identity>;
  readonly audit: AuditSink;
  readonly approvals?: ApprovalGate;
  readonly maxMessageBytes: number;
  /** Nonce in the deliberately failing statement we send upstream in place of a denied one. */
  readonly denialMarker: string;
  /** Shared by every connection of the process: how many bytes of large client messages may be buffered at once. */
  readonly messageBudget?: LargeMessageBudget;
  /** Upstream connection slots of this target (`maxConnections`); absent: unbounded. */
  readonly slots?: ConnectionSlots;
}
