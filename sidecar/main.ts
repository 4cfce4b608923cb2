// `warden sidecar`: loads the policy, opens one listener per postgres target and the admin port,
// hot-reloads policy changes (reconciling listeners), and shuts down gracefully on SIGTERM.
import './runtime-flags';
import { createHash, randomBytes } from 'node:crypto';
import type * as http from 'node:http';
import * as os from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger, type Logger } from '../common/log';
import { Metrics } from '../common/metrics';
import type { CompiledPolicy } from '../common/policy/compile';
import type { Identity } from '../common/policy/types';
import { createAdminServer, parseAddr } from '../common/admin-server';
import { createAuditSink } from './audit/sink';
import { openAuditTrail, type AuditTrail } from './audit/trail';
import { otlpSettingsFromEnv, type Exporters } from './audit/exporters';
import { METRIC } from '../common/audit/names';
import { PolicyStore } from './policy-store';
import { CancelRegistry } from './postgres/cancel-registry';
import { createParserWorker } from './postgres/classify/parser-worker';
import { PostgresListener } from './postgres/listener';
import type { ClassifyResult } from './postgres/classify/classify';
import type { ClassifiedSql } from './postgres/runtime';
import type { ApprovalGate, HttpApprovalGate } from './approvals/hold';
import type { AuditSink } from './audit/events';
import { createTargetRuntime } from './postgres/target-runtime';
import { DEFAULT_LARGE_MESSAGE_BUDGET_BYTES, MessageBudget } from './postgres/message-budget';
import { SecretStore } from './secrets';
import { listenOn } from './listen';
import { createApprovalsHandler, type AdminHandler } from './approvals/admin-api';
import { createApprovalGate } from './approvals/gate';
import { LocalApprovalStore } from './approvals/local-store';
import { createNotifier, type Notifier, type NotifyTarget } from './approvals/notify';
import { IdentityError } from '../common/identity/errors';
import { bearerFromHeaders } from '../common/identity/extract';
import { createTokenVerifier, type TokenVerifier, type TokenVerifierOptions } from '../common/identity/verifier';
import { createEgressServer } from './http/egress-server';
import { createRouteHandler } from './http/routes/route-proxy';

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
  stop(graceMs?: number): Promise<void>;
}

/** The pod's own identity, from the downward-API env the operator injects. */
export function podIdentity(): Identity {
  const sa = process.env.POD_SERVICE_ACCOUNT ?? process.env.WARDEN_SERVICE_ACCOUNT;
  const ns = process.env.WARDEN_POD_NAMESPACE ?? process.env.POD_NAMESPACE;
  if (sa && ns) return { subject: `system:serviceaccount:${ns}:${sa}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`], source: 'pod' };
  return { subject: `local:${os.userInfo().username}`, groups: [], source: 'local' };
}

function hashKeyFrom(secrets: SecretStore, log: Logger): Buffer {
  let k: string | undefined;
  try {
    k = secrets.dir ? secrets.readOptional('warden-masking', 'hash-key') : undefined;
  } catch (err) {
    // An unreadable key is not a missing one: say so, then fall back rather than refuse to start.
    log.error('cannot read the masking hash key; using a per-process key', { error: (err as Error).message });
  }
  // Any length of key material works; HMAC wants a fixed-size key.
  if (k) return createHash('sha256').update(k).digest();
  log.warn('no masking hash key (secret warden-masking/hash-key): hashes are consistent only within this process');
  return randomBytes(32);
}

/**
 * Where held operations are announced: the optional Secret `warden-notify` in the secrets dir, keys
 * `webhook-url` (+ `webhook-secret` to sign with HMAC-SHA256) and `slack-url` (Slack incoming-webhook
 * URLs are credentials, so they live in a Secret, not in the policy).
 */
function approvalNotifier(secrets: SecretStore, log: Logger): Notifier | undefined {
  if (!secrets.dir) return undefined;
  const read = (key: string): string | undefined => {
    try {
      return secrets.readOptional('warden-notify', key)?.trim() || undefined;
    } catch (err) {
      log.error('cannot read the approval notification settings; notifications are off', { key, error: (err as Error).message });
      return undefined;
    }
  };
  const targets: NotifyTarget[] = [];
  const webhook = read('webhook-url');
  if (webhook) targets.push({ kind: 'webhook', url: webhook, secret: read('webhook-secret') });
  const slack = read('slack-url');
  if (slack) targets.push({ kind: 'slack', url: slack });
  if (targets.length === 0) return undefined;
  try {
    return createNotifier(targets, { log });
  } catch (err) {
    log.error('approval notifications disabled: invalid target', { error: (err as Error).message });
    return undefined;
  }
}

/**
 * The standalone approval back end. Holds need someone who can decide them: the local user
 * (--local-approvals) or an approver presenting a token from the policy's `spec.identity` issuer.
 * When neither is available the gate answers a hold at once as a denial that says why; it checks
 * per hold, so a reload that adds `spec.identity` makes holds decidable without a restart.
 */
interface ApprovalService {
  gate: ApprovalGate & HttpApprovalGate;
  store?: LocalApprovalStore;
  api?: AdminHandler;
  notifier?: Notifier;
}

function approvalService(
  opts: SidecarOptions,
  callerTokens: () => ((token: string) => Promise<Identity>) | undefined,
  secrets: SecretStore,
  log: Logger,
): ApprovalService {
  if (opts.approvals) return { gate: opts.approvals as ApprovalGate & HttpApprovalGate };
  if (process.env.WARDEN_APPROVALS === 'kubernetes') {
    // Holds become ApprovalRequest objects (the operator sets this). Loaded lazily so that a
    // standalone sidecar never loads the Kubernetes client.
    const { kubeApprovalService } = require('./approvals/kube-backend') as typeof import('./approvals/kube-backend');
    return kubeApprovalService({ log });
  }
  const notifier = approvalNotifier(secrets, log);
  const store = new LocalApprovalStore({
    onChange: (r) => {
      if (!notifier) return;
      if (r.state === 'pending') {
        if (r.decisions.length === 0) notifier.notify(r, 'created');
      } else {
        notifier.notify(r, r.state === 'approved' || r.state === 'denied' ? 'decided' : r.state);
      }
    },
  });
  const gate = createApprovalGate(store, {
    undecidable: () =>
      opts.localApprovals || callerTokens()
        ? undefined
        : 'nobody can decide holds on this sidecar (run it with --local-approvals for development, or set spec.identity so approvers can present tokens)',
    onCreated: (r) => log.info('operation held for approval', { approval: r.id, rule: r.rule, target: r.target, expiresAt: r.expiresAt }),
  });
  const api = createApprovalsHandler({
    backend: store,
    localApprovals: opts.localApprovals,
    // the same verifier (and JWKS cache) callers' tokens use, following policy reloads
    verifyToken: (t) => {
      const verify = callerTokens();
      if (!verify) return Promise.reject(new IdentityError('missing_token', 'this policy has no spec.identity, so no approver token can be verified'));
      return verify(t);
    },
    onDecision: (id, by, verdict) => log.info('approval decided', { approval: id, by: by.subject, verdict }),
  });
  return { gate, store, api, notifier };
}

/**
 * With `spec.identity` in the running policy, callers must present a token: this gives the function
 * that verifies one (undefined without spec.identity, when the pod's own identity is used). The
 * verifier, with its JWKS cache, is rebuilt only when a reload changes the identity block.
 */
function callerTokenVerifier(store: PolicyStore, opts: TokenVerifierOptions | undefined): () => ((token: string) => Promise<Identity>) | undefined {
  let key: string | undefined;
  let verifier: TokenVerifier | undefined;
  return () => {
    const spec = store.current.source.spec.identity;
    if (!spec) return undefined;
    const k = JSON.stringify(spec);
    if (k !== key || !verifier) {
      verifier = createTokenVerifier(spec, opts);
      key = k;
    }
    const v = verifier;
    return (token) => v.verify(token);
  };
}

/**
 * The forward proxy's caller: with spec.identity, the token in Proxy-Authorization (Bearer, or Basic
 * with the token as the password), never Authorization, which belongs to the destination.
 */
function forwardCaller(
  callerTokens: () => ((token: string) => Promise<Identity>) | undefined,
  pod: Identity,
): (req: http.IncomingMessage) => Identity | Promise<Identity> {
  return (req) => {
    const verify = callerTokens();
    if (!verify) return pod;
    const token = bearerFromHeaders({ 'proxy-authorization': req.headers['proxy-authorization'] });
    if (token === undefined) {
      return Promise.reject(new IdentityError('missing_token', "no token: this policy requires the caller's JWT as Proxy-Authorization (Bearer, or Basic with the token as the password)"));
    }
    return verify(token);
  };
}

function toClassifiedSql(r: ClassifyResult): ClassifiedSql {
  return 'parseError' in r ? { statements: [], parseError: r.parseError, parserFailure: r.parserFailure } : r;
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
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
  // One parser worker thread for every target (started with the listeners, below).
  const classifier = createParserWorker({
    maxEntries: 10_000,
    onReplace: (reason) => log.warn('the SQL parser worker was replaced', { reason }),
  });
  const secrets = new SecretStore(opts.secretsDir);
  const cancels = new CancelRegistry();
  const messageBudget = new MessageBudget(opts.largeMessageBudgetBytes ?? DEFAULT_LARGE_MESSAGE_BUDGET_BYTES);
  const identity = opts.identity ?? podIdentity();
  const hashKey = hashKeyFrom(secrets, log);
  const callerTokens = callerTokenVerifier(store, opts.identityVerifier);
  const decisions = approvalService(opts, callerTokens, secrets, log);
  // Opened last before the listeners: a start that fails earlier leaves no spool locked behind.
  let trail: AuditTrail | undefined;
  if (!opts.audit && (opts.spoolDir || otlp || opts.auditExporters)) {
    let dir = opts.spoolDir;
    if (!dir) {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-spool-'));
      log.warn('no --spool-dir: audit records are spooled in a temporary directory and will not survive a restart', { dir });
    }
    trail = openAuditTrail({
      dir,
      maxBytes: opts.spoolMaxBytes ?? 200 * 1024 * 1024,
      whenFull: store.current.auditWhenSpoolFull,
      log,
      metrics,
      otlp,
      exporters: opts.auditExporters,
      ...opts.auditTiming,
    });
  }
  const audit: AuditSink = opts.audit ?? createAuditSink({ log, metrics, recorder: trail?.recorder });
  const reloads = metrics.counter(METRIC.policyReloads, 'Policy reload attempts, by result.');
  const active = metrics.gauge(METRIC.activeConnections, 'Open agent connections, by target.');
  const listeners = new Map<string, { listener: PostgresListener; port: number }>();
  const ports = new Map<string, number>();
  let lastError: string | undefined;
  let stopping = false;

  const openListener = async (name: string, listenPort: number): Promise<void> => {
    const rt = createTargetRuntime({
      target: name,
      store,
      secrets,
      classify: (text) => {
        const r = classifier.classify(text);
        return r instanceof Promise ? r.then(toClassifiedSql) : toClassifiedSql(r);
      },
      cancels,
      identity,
      verifyToken: callerTokens,
      audit,
      approvals: decisions.gate,
      hashKey,
      maxMessageBytes: opts.maxMessageBytes ?? 256 * 1024 * 1024,
      messageBudget,
    });
    const listener = new PostgresListener(rt, log, (n) => active.set({ target: name }, n));
    let port: number;
    try {
      port = await listener.listen(opts.portOverrides?.[name] ?? listenPort);
    } catch (err) {
      rt.close();
      throw err;
    }
    listeners.set(name, { listener, port });
    ports.set(name, port);
  };

  const reconcile = async (policy: CompiledPolicy): Promise<void> => {
    for (const [name, l] of listeners) {
      const t = policy.targets.get(name)?.postgres;
      const wanted = opts.portOverrides?.[name] ?? t?.listenPort;
      if (!t || (wanted !== undefined && wanted !== 0 && wanted !== l.port)) {
        listeners.delete(name);
        ports.delete(name);
        await l.listener.close(5000);
      }
    }
    for (const [name, target] of policy.targets) {
      if (stopping) return;
      if (target.postgres && !listeners.has(name)) await openListener(name, target.postgres.listenPort);
    }
  };

  // Reloads apply one at a time: two overlapping reconciles could both try to bind a port.
  let reconciling: Promise<void> = Promise.resolve();
  const onReload = (p: CompiledPolicy): void => {
    trail?.setWhenFull(p.auditWhenSpoolFull);
    reconciling = reconciling.then(() =>
      reconcile(p).then(
        () => {
          lastError = undefined;
          reloads.inc({ result: 'applied' });
        },
        (err: Error) => {
          lastError = err.message;
          reloads.inc({ result: 'failed' });
          log.error('applying the reloaded policy failed', { error: lastError });
        },
      ),
    );
  };

  const routes = createRouteHandler({
    policy: () => store.current,
    secrets,
    identity,
    // read per request, so a reload that adds or removes spec.identity applies at once
    get verifyToken() {
      return callerTokens();
    },
    hashKey,
    approvals: decisions.gate,
    audit: (e) => audit.http?.(e),
    auditBlocked: () => audit.blocked?.(),
    auditRecords: trail !== undefined,
  });
  const egress = createEgressServer({
    routes,
    forward: { policy: () => store.current, identity: forwardCaller(callerTokens, identity), connectTimeoutMs: 10_000, approvals: decisions.gate, audit: (e) => audit.egress?.(e) },
  });
  const ready = (): { ok: boolean; reason?: string } => (lastError ? { ok: false, reason: lastError } : { ok: true });
  const admin: http.Server = createAdminServer({ metrics, ready, extra: decisions.api ? [decisions.api] : [] });
  const health: http.Server | undefined = healthAt ? createAdminServer({ metrics, ready, healthOnly: true }) : undefined;

  /**
   * Stops accepting everywhere, then drains: held operations are cancelled (their agents get a
   * denial), agent connections get `graceMs` to finish, queued notifications get a moment to go out.
   */
  const stop = async (graceMs = 10_000): Promise<void> => {
    stopping = true;
    store.stop();
    await reconciling;
    decisions.store?.close();
    const drainHttp = (async () => {
      const closed = egress.listening ? closeServer(egress) : Promise.resolve();
      egress.closeIdleConnections();
      const deadline = setTimeout(() => egress.closeAllConnections(), graceMs);
      deadline.unref();
      await closed;
      clearTimeout(deadline);
    })();
    await Promise.all([drainHttp, ...[...listeners.values()].map((l) => l.listener.close(graceMs))]);
    await routes.close();
    if (decisions.notifier) await Promise.race([decisions.notifier.idle(), new Promise((r) => setTimeout(r, Math.min(graceMs, 2000)).unref())]);
    // Records of the last operations go out before the process ends (bounded by the grace time);
    // whatever the collector did not take stays in the spool for the next start.
    if (trail) await trail.close(Math.min(graceMs, 5000)).catch((err: Error) => log.error('closing the audit trail failed', { error: err.message }));
    await classifier.close();
    for (const s of [admin, health]) {
      if (!s?.listening) continue;
      s.closeAllConnections();
      await closeServer(s);
    }
  };

  let egressPort: number;
  let adminPort: number;
  let healthPort: number | undefined;
  try {
    // The sidecar does not start without a parser.
    await classifier.start();
    await reconcile(store.current);
    store.on('reload', onReload);
    store.on('rejected', () => reloads.inc({ result: 'rejected' }));
    store.watch();
    egressPort = await listenOn(egress, egressAt.host, egressAt.port);
    adminPort = await listenOn(admin, adminAt.host, adminAt.port);
    if (health && healthAt) healthPort = await listenOn(health, healthAt.host, healthAt.port);
  } catch (err) {
    await stop(0);
    throw err;
  }
  log.info('sidecar ready', { policy: store.current.name, admin: `${adminAt.host}:${adminPort}`, egress: `${egressAt.host}:${egressPort}`, targets: [...ports.keys()] });

  return { ports, adminPort, egressPort, store, approvals: decisions.store, metrics, audit: trail, healthPort, messageBudget, stop };
}
