// Builds the TargetRuntime a session uses for one postgres target: the current policy and target
// spec from the store, masking compiled once per policy version, credentials read at each login.
import { randomBytes } from 'node:crypto';
import type { CompiledPolicy } from '../../common/policy/compile';
import { parseDuration } from '../../common/policy/syntax';
import type { Identity, PostgresTargetSpec } from '../../common/policy/types';
import type { PolicyStore } from '../policy-store';
import type { SecretStore } from '../secrets';
import { CatalogCache } from './catalog';
import type { CancelRegistry } from './cancel-registry';
import { ConnectionSlots } from './connection-slots';
import { ControlConnection } from './control-query';
import { compileTargetMasking, type TargetMasking } from './row-masking';
import { ShapeCache } from './shape-cache';
import type { ClassifiedSql, TargetRuntime } from './runtime';
import type { ApprovalGate } from '../approvals/hold';
import type { AuditSink } from '../audit/events';
import type { LargeMessageBudget } from './protocol/frame-reader';
import { connectUpstream, withReadOnly, type UpstreamOptions } from './upstream';

export interface TargetRuntimeOptions {
  target: string;
  store: PolicyStore;
  secrets: SecretStore;
  classify: (text: string) => ClassifiedSql | Promise<ClassifiedSql>;
  cancels: CancelRegistry;
  identity: Identity;
  /** Caller-token verification (spec.identity); read at each login so a reloaded policy applies. */
  verifyToken?: () => ((token: string) => Promise<Identity>) | undefined;
  audit: AuditSink;
  approvals?: ApprovalGate;
  hashKey: Buffer;
  maxMessageBytes: number;
  /** Shared by every target's connections (see message-budget.ts). */
  messageBudget?: LargeMessageBudget;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** targets[].postgres.maxStatementBytes when unset: parsing takes ~2 s and ~300 MB at worst per MiB. */
export const DEFAULT_MAX_STATEMENT_BYTES = 1024 * 1024;

export function createTargetRuntime(o: TargetRuntimeOptions): TargetRuntime & { close(): void } {
  let maskingFor: CompiledPolicy | undefined;
  let masking: TargetMasking | undefined;
  let lastSpec: PostgresTargetSpec | undefined;

  const spec = (): PostgresTargetSpec => {
    const s = o.store.current.targets.get(o.target)?.postgres;
    if (s) lastSpec = s;
    if (!lastSpec) throw new Error(`target "${o.target}" is not a postgres target of the running policy`);
    return lastSpec;
  };

  const upstreamOptions = (params: Record<string, string>): UpstreamOptions => {
    const s = spec();
    return {
      host: s.host,
      port: s.port ?? 5432,
      database: s.database,
      tls: s.tls ?? 'require',
      credentials: {
        username: o.secrets.read(s.credentialsSecret, 'username'),
        password: o.secrets.read(s.credentialsSecret, 'password'),
      },
      ca: s.tls === 'verify-full' ? o.secrets.readOptional(s.credentialsSecret, 'ca.crt') : undefined,
      params: s.readOnly === true ? withReadOnly(params) : params,
      timeoutMs: s.connectTimeout ? parseDuration(s.connectTimeout) : DEFAULT_CONNECT_TIMEOUT_MS,
      maxMessageBytes: o.maxMessageBytes,
    };
  };

  const shapes = new ShapeCache();
  const catalog = new CatalogCache({
    connect: async () => new ControlConnection(await connectUpstream(upstreamOptions({ application_name: 'agent-warden-catalog' }))),
    ttlMs: 5 * 60_000,
    onInvalidate: () => shapes.clear(),
  });

  return {
    target: o.target,
    policy: () => o.store.current,
    spec,
    masking: () => {
      const p = o.store.current;
      if (p !== maskingFor) {
        maskingFor = p;
        masking = compileTargetMasking(p.masking, o.target, o.hashKey);
        catalog.invalidate();
      }
      return masking;
    },
    classify: o.classify,
    maxStatementBytes: () => {
      const s = o.store.current.targets.get(o.target)?.postgres ?? lastSpec;
      return s?.maxStatementBytes ?? DEFAULT_MAX_STATEMENT_BYTES;
    },
    upstreamOptions,
    catalog,
    shapes,
    cancels: o.cancels,
    identity: o.identity,
    get verifyToken() {
      return o.verifyToken?.();
    },
    audit: o.audit,
    approvals: o.approvals,
    maxMessageBytes: o.maxMessageBytes,
    messageBudget: o.messageBudget,
    denialMarker: `WARDEN_DENIED_${randomBytes(6).toString('hex')}`,
    slots: new ConnectionSlots(() => spec().maxConnections),
    close: () => {
      catalog.close();
      shapes.close();
    },
  };
}
