// `warden sidecar`: loads the policy, opens one listener per postgres target and the admin port,
// hot-reloads policy changes (reconciling listeners), and shuts down gracefully on SIGTERM.
// This file only reads the options and wires the services (sidecar/services/) together.
import './runtime-flags';
import { createLogger, type Logger } from '../common/log';
import { Metrics } from '../common/metrics';
import type { Identity } from '../common/policy/types';
import type { TokenVerifierOptions } from '../common/identity/verifier';
import { parseAddr } from '../common/admin-server';
import type { AuditTrail } from './audit/trail';
import type { Exporters } from './audit/exporters';
import { otlpSettingsFromEnv } from './audit/otlp-settings';
import { PolicyStore } from './policy-store';
import type { ApprovalGate } from './approvals/hold';
import type { AuditSink } from './audit/events';
import { DEFAULT_LARGE_MESSAGE_BUDGET_BYTES, MessageBudget } from './postgres/message-budget';
import { SecretStore } from './secrets';
import { listenOn } from './listen';
import type { LocalApprovalStore } from './approvals/local-store';
import { createAdminServers } from './services/admin';
import { approvalService } from './services/approvals';
import { openAudit } from './services/audit';
import { hashKeyFrom } from './services/hash-key';
import { createHttpEgress } from './services/http-egress';
import { callerTokenVerifier, clusterKeysPath, podIdentity } from './services/identity';
import { PolicyReloads } from './services/policy-reload';
import { createSqlClassifier, PostgresListeners } from './services/postgres';

export { podIdentity } from './services/identity';

export interface SidecarOptions {
  policyFile: string;
  secretsDir?: string;
  adminAddr: string;
  /** HTTP egress (routes and forward proxy); default 127.0.0.1:15001. */
  egressAddr?: string;
  /** Overrides listen ports (tests: `{crm: 0}` picks a free port). */
  portOverrides?: Record<string, number>;
  maxMessageBytes?: number;
  /** Bytes of large client messages all PostgreSQL connections together may buffer (tests lower it). */
  largeMessageBudgetBytes?: number;
  logger?: Logger;
  audit?: AuditSink;
  approvals?: ApprovalGate;
  identity?: Identity;
  /**
   * Options for the caller-token verifier built from `spec.identity` (tests: `allowInsecureLoopback`
   * for an http://127.0.0.1 issuer stand-in, `now` for a fixed clock).
   */
  identityVerifier?: TokenVerifierOptions;
  /**
   * spec.identity.kubernetes: the cluster's issuer and keys (identityVerifier.clusterKeysFile wins).
   * Default: WARDEN_KUBERNETES_KEYS, else kubernetes-keys.json next to the policy file (the ConfigMap's key).
   */
  clusterKeysFile?: string;
  /** Standalone development and the demo only: loopback callers may decide holds as the local OS user. */
  localApprovals?: boolean;
  /** Probe port: /healthz and /readyz only, for the kubelet (which cannot reach loopback). */
  healthAddr?: string;
  /**
   * Audit spool directory: every record is written here before the agent sees its result and kept
   * until the collector acknowledges it. Default: a fresh temporary directory when a collector is
   * configured (records then do not survive a restart), none otherwise (no records kept).
   */
  spoolDir?: string;
  /** Default 200 MiB. */
  spoolMaxBytes?: number;
  /** Environment for the OTLP settings (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Tests: exporters pointed at their receiver (replaces OTEL_EXPORTER_OTLP_*). */
  auditExporters?: Exporters;
  /** Tests: faster audit shipping and metric export. */
  auditTiming?: { lingerMs?: number; maxBackoffMs?: number; metricsIntervalMs?: number };
}

export interface RunningSidecar {
  ports: Map<string, number>;
  adminPort: number;
  egressPort: number;
  store: PolicyStore;
  /** Held operations waiting for a decision (standalone approval back end), when holds can be decided. */
  approvals?: LocalApprovalStore;
  metrics: Metrics;
  /** The audit spool and shipper, when records are kept. */
  audit?: AuditTrail;
  healthPort?: number;
  /** What all PostgreSQL connections together buffer of large client messages now. */
  messageBudget: MessageBudget;
  /** Whether the SQL parser worker runs (only once the policy has a postgres target: ~10 MB). */
  sqlParserStarted(): boolean;
  stop(graceMs?: number): Promise<void>;
}

export async function startSidecar(opts: SidecarOptions): Promise<RunningSidecar> {
  // Bad addresses fail before anything is opened, so a failed start leaves nothing behind.
  const adminAt = parseAddr(opts.adminAddr);
  const egressAt = parseAddr(opts.egressAddr ?? '127.0.0.1:15001');
  const healthAt = opts.healthAddr ? parseAddr(opts.healthAddr) : undefined;
  const otlp = otlpSettingsFromEnv(opts.env ?? process.env);
  const log = opts.logger ?? createLogger({ component: 'sidecar' });
  const metrics = new Metrics();
  const store = new PolicyStore(opts.policyFile, log);
  // One parser worker thread for every postgres target, started with the first one's listener.
  const classifier = createSqlClassifier(log);
  const secrets = new SecretStore(opts.secretsDir);
  const messageBudget = new MessageBudget(opts.largeMessageBudgetBytes ?? DEFAULT_LARGE_MESSAGE_BUDGET_BYTES);
  const identity = opts.identity ?? podIdentity();
  const hashKey = hashKeyFrom(secrets, log);
  const callerTokens = callerTokenVerifier(store, {
    clusterKeysFile: opts.clusterKeysFile ?? clusterKeysPath(opts.policyFile, opts.env ?? process.env),
    // In a pod whose service account the sidecar knows, only that service account's tokens count.
    ...(identity.source === 'pod' ? { kubernetesSubject: identity.subject } : {}),
    ...opts.identityVerifier,
  });
  const decisions = approvalService({ approvals: opts.approvals, localApprovals: opts.localApprovals, callerTokens, secrets, log });
  // Opened last before the listeners: a start that fails earlier leaves no spool locked behind.
  const { sink: audit, trail } = openAudit({
    audit: opts.audit,
    spoolDir: opts.spoolDir,
    spoolMaxBytes: opts.spoolMaxBytes,
    otlp,
    exporters: opts.auditExporters,
    timing: opts.auditTiming,
    store,
    log,
    metrics,
  });
  const reloads = new PolicyReloads(store, metrics, log);
  const postgres = new PostgresListeners({
    store,
    secrets,
    classifier,
    identity,
    callerTokens,
    audit,
    approvals: decisions.gate,
    hashKey,
    maxMessageBytes: opts.maxMessageBytes ?? 256 * 1024 * 1024,
    messageBudget,
    portOverrides: opts.portOverrides,
    log,
    metrics,
  });
  const egress = createHttpEgress({
    store,
    secrets,
    identity,
    callerTokens,
    hashKey,
    approvals: decisions.gate,
    audit,
    auditRecords: trail !== undefined,
  });
  const admin = createAdminServers({ metrics, ready: reloads.ready, api: decisions.api, withHealth: healthAt !== undefined });

  /**
   * Stops accepting everywhere, then drains: held operations are cancelled (their agents get a
   * denial), agent connections get `graceMs` to finish, queued notifications get a moment to go out.
   */
  const stop = async (graceMs = 10_000): Promise<void> => {
    postgres.stopOpening();
    await reloads.stop();
    decisions.store?.close();
    await Promise.all([egress.drain(graceMs), postgres.close(graceMs)]);
    await egress.closeRoutes();
    if (decisions.notifier)
      await Promise.race([decisions.notifier.idle(), new Promise((r) => setTimeout(r, Math.min(graceMs, 2000)).unref())]);
    // Records of the last operations go out before the process ends (bounded by the grace time);
    // whatever the collector did not take stays in the spool for the next start.
    if (trail)
      await trail.close(Math.min(graceMs, 5000)).catch((err: Error) => log.error('closing the audit trail failed', { error: err.message }));
    await classifier.close();
    await admin.close();
  };

  let egressPort: number;
  let adminPort: number;
  let healthPort: number | undefined;
  try {
    // The first postgres listener starts the parser: with one, the sidecar does not start without a parser.
    await postgres.reconcile(store.current);
    reloads.watch(
      (p) => postgres.reconcile(p),
      (p) => trail?.setWhenFull(p.auditWhenSpoolFull),
    );
    egressPort = await listenOn(egress.server, egressAt.host, egressAt.port);
    adminPort = await listenOn(admin.admin, adminAt.host, adminAt.port);
    if (admin.health && healthAt) healthPort = await listenOn(admin.health, healthAt.host, healthAt.port);
  } catch (err) {
    await stop(0);
    throw err;
  }
  const ports = postgres.ports;
  log.info('sidecar ready', {
    policy: store.current.name,
    admin: `${adminAt.host}:${adminPort}`,
    egress: `${egressAt.host}:${egressPort}`,
    targets: [...ports.keys()],
  });

  return {
    ports,
    adminPort,
    egressPort,
    store,
    approvals: decisions.store,
    metrics,
    audit: trail,
    healthPort,
    messageBudget,
    sqlParserStarted: () => postgres.parserStarted,
    stop,
  };
}
