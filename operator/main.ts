// `warden operator`: the controller (leader only) and the admission webhooks (every replica) in one
// process, plus an admin HTTP server with /healthz, /readyz and /metrics.
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../common/log';
import { Metrics } from '../common/metrics';
import { parseDuration } from '../common/policy/syntax';
import { validateAccessPolicy } from '../common/policy/schema';
import type { AccessPolicy } from '../common/policy/types';
import { createAdminServer, parseAddr } from '../common/admin-server';
import { createApprovalRequestAdmission, type ApprovalRuleInfo } from './approvals/admission';
import { startApprovalSweeper, type ApprovalSweeper } from './approvals/gc';
import { parseOperatorConfig, type OperatorConfig } from './config';
import { createApplier } from './controller/apply';
import { ClusterKeysSource } from './controller/cluster-keys';
import { PolicyController } from './controller/controller';
import { Informer } from './controller/informers';
import { createKubeRest, type KubeRest } from './controller/kube-rest';
import { LeaderElector } from './controller/leader';
import type { KubeObject, PolicyObject } from './controller/types';
import { injectionConfigHash } from './inject/hash';
import { kubeCertClient, startCertManager, type CertManager } from './webhook/certs';
import { createPodMutator } from './webhook/pod-admission';
import { createPolicyValidator } from './webhook/policy-admission';
import { startWebhookServer, type WebhookServer } from './webhook/server';
import type { AdmissionHandler } from './webhook/types';

export const LEASE_NAME = 'agent-warden-operator';
const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface OperatorOptions {
  /** A ready KubeConfig (tests); otherwise kubeconfigPath, in-cluster, or KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig;
  kubeconfigPath?: string;
  /** The operator config file; or `config` already parsed. */
  configPath?: string;
  config?: OperatorConfig;
  /** Admin server HOST:PORT (default 0.0.0.0:8080). */
  adminAddr?: string;
  /** The operator's own namespace (Lease, webhook Secret): POD_NAMESPACE or the service account's. */
  namespace?: string;
  /** This replica's name in the Lease: POD_NAME or hostname. */
  identity?: string;
  /** false: no webhook server (controller only). */
  webhooks?: boolean;
  /** Webhook listen host (default all interfaces). */
  webhookHost?: string;
  log?: Logger;
  metrics?: Metrics;
  /** Tuning, mostly for tests. */
  timings?: {
    leaseDurationSeconds?: number;
    renewIntervalMs?: number;
    renewDeadlineMs?: number;
    stallTimeoutMs?: number;
    backoffInitialMs?: number;
    resyncMs?: number;
    /** spec.identity.kubernetes: how often the cluster's service-account keys are fetched again (default 5 min). */
    clusterKeysRefreshMs?: number;
    clusterKeysRetryMs?: number;
  };
}

export interface RunningOperator {
  adminPort: number;
  webhookPort?: number;
  identity: string;
  controller: PolicyController;
  isLeader(): boolean;
  ready(): { ok: boolean; reason?: string };
  /** Graceful stop: finish in-flight reconciles, release the Lease, close servers. */
  stop(): Promise<void>;
}

export async function startOperator(opts: OperatorOptions): Promise<RunningOperator> {
  const log = opts.log ?? createLogger({ component: 'operator' });
  const metrics = opts.metrics ?? new Metrics();
  const kc = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfigPath);
  const namespace = opts.namespace ?? operatorNamespace();
  const identity = opts.identity ?? process.env.POD_NAME ?? `${hostname()}_${randomUUID().slice(0, 8)}`;
  const config = opts.config ?? (await readConfig(opts.configPath, namespace));
  const t = opts.timings ?? {};
  const rest = createKubeRest(kc);
  const leaderGauge = metrics.gauge('warden_operator_leader', '1 while this replica leads (reconciles), else 0.');
  leaderGauge.set({}, 0);

  let elector: LeaderElector | undefined;
  const controller = new PolicyController({
    rest,
    log: log.child({ part: 'controller' }),
    metrics,
    applier: createApplier({ rest, identity }),
    expectedHash: (p) => injectionConfigHash(config.injector, p),
    isLeader: () => elector?.isLeader() ?? false,
    clusterKeys: new ClusterKeysSource({
      rest,
      log: log.child({ part: 'cluster-keys' }),
      refreshMs: t.clusterKeysRefreshMs,
      retryMs: t.clusterKeysRetryMs,
    }),
    resyncMs: t.resyncMs,
    informer: { stallTimeoutMs: t.stallTimeoutMs, backoffInitialMs: t.backoffInitialMs },
  });
  const namespaces = new Informer<KubeObject>({
    rest,
    log,
    path: '/api/v1/namespaces',
    stallTimeoutMs: t.stallTimeoutMs,
    backoffInitialMs: t.backoffInitialMs,
  });
  controller.start();
  namespaces.start();

  let sweeper: ApprovalSweeper | undefined;
  elector = new LeaderElector({
    rest,
    namespace,
    name: LEASE_NAME,
    identity,
    log,
    leaseDurationSeconds: t.leaseDurationSeconds,
    renewIntervalMs: t.renewIntervalMs,
    renewDeadlineMs: t.renewDeadlineMs,
    onStartedLeading: () => {
      leaderGauge.set({}, 1);
      controller.enqueueAll();
      sweeper = startApprovalSweeper({
        client: kc.makeApiClient(CustomObjectsApi),
        log: log.child({ part: 'approvals-gc' }),
        ttlMs: config.approvals.ttlMs,
        intervalMs: 60_000,
      });
    },
    onStoppedLeading: () => {
      leaderGauge.set({}, 0);
      sweeper?.stop();
      sweeper = undefined;
    },
  });
  elector.start();

  let webhook: { server: WebhookServer; certs: CertManager } | undefined;
  const cleanupOnFailure = async (): Promise<void> => {
    await controller.stop();
    await namespaces.stop();
    await elector?.stop();
  };
  try {
    if (opts.webhooks !== false)
      webhook = await startWebhooks({ kc, rest, config, namespace, log, metrics, host: opts.webhookHost, controller, namespaces });
  } catch (e) {
    await cleanupOnFailure();
    throw e;
  }

  let stopping = false;
  const ready = (): { ok: boolean; reason?: string } => {
    if (stopping) return { ok: false, reason: 'shutting down' };
    if (!controller.synced() || !namespaces.hasSynced()) return { ok: false, reason: 'informers not synced yet' };
    return { ok: true };
  };
  const admin = createAdminServer({ ready, metrics });
  const { host, port } = parseAddr(opts.adminAddr ?? '0.0.0.0:8080');
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(port, host, () => resolve());
  }).catch(async (e: Error) => {
    await webhook?.server.close();
    webhook?.certs.stop();
    await cleanupOnFailure();
    throw new Error(`admin server cannot listen on ${opts.adminAddr ?? '0.0.0.0:8080'}: ${e.message}`);
  });
  log.info('operator started', {
    identity,
    namespace,
    adminPort: (admin.address() as AddressInfo).port,
    webhookPort: webhook?.server.port,
  });

  return {
    adminPort: (admin.address() as AddressInfo).port,
    webhookPort: webhook?.server.port,
    identity,
    controller,
    isLeader: () => elector?.isLeader() ?? false,
    ready,
    async stop() {
      if (stopping) return;
      stopping = true;
      log.info('operator stopping');
      await controller.stop(); // in-flight reconciles finish first
      await elector?.stop(); // then the Lease is released, so a successor starts at once
      await namespaces.stop();
      if (webhook) {
        await webhook.server.close();
        webhook.certs.stop();
      }
      await closeServer(admin);
      log.info('operator stopped');
    },
  };
}

interface WebhookDeps {
  kc: KubeConfig;
  rest: KubeRest;
  config: OperatorConfig;
  namespace: string;
  log: Logger;
  metrics: Metrics;
  host?: string;
  controller: PolicyController;
  namespaces: Informer<KubeObject>;
}

async function startWebhooks(d: WebhookDeps): Promise<{ server: WebhookServer; certs: CertManager }> {
  const policies = validPolicies(() => d.controller.policies.list());
  const approvals = createApprovalRequestAdmission({
    policyRule: (ns, name, rule) =>
      holdRule(
        policies().find((p) => p.metadata.namespace === ns && p.metadata.name === name),
        rule,
      ),
  });
  const handlers: Record<string, AdmissionHandler> = {
    '/mutate-pods': createPodMutator({
      policies,
      namespaceLabels: (ns) => {
        const n = d.namespaces.get(undefined, ns);
        return n ? (n.metadata.labels ?? {}) : undefined;
      },
      config: () => d.config.injector,
      log: d.log.child({ part: 'pod-webhook' }),
    }),
    '/validate-accesspolicies': createPolicyValidator(),
    '/mutate-approvalrequests': approvals.mutate,
    '/validate-approvalrequests': approvals.validate,
  };
  let server: WebhookServer | undefined;
  const certs = await startCertManager({
    client: kubeCertClient(d.kc),
    namespace: d.namespace,
    secretName: d.config.webhook.secretName,
    serviceName: d.config.webhook.serviceName,
    webhookConfigNames: { mutating: d.config.webhook.mutatingName, validating: d.config.webhook.validatingName },
    log: d.log.child({ part: 'webhook-certs' }),
    mode: d.config.webhook.certMode === 'self' ? 'self-signed' : 'cert-manager',
    onRotate: () => server?.reloadTls(),
  });
  try {
    server = await startWebhookServer({
      port: d.config.webhook.port,
      host: d.host,
      tls: () => certs.tls(),
      handlers,
      log: d.log.child({ part: 'webhook' }),
      metrics: d.metrics,
    });
  } catch (e) {
    certs.stop();
    throw e;
  }
  return { server, certs };
}

/** The informer's policies, validated (and defaulted) once per resourceVersion; invalid ones are left out. */
function validPolicies(list: () => PolicyObject[]): () => AccessPolicy[] {
  const memo = new Map<string, AccessPolicy | null>();
  return () => {
    const out: AccessPolicy[] = [];
    const seen = new Set<string>();
    for (const p of list()) {
      const k = `${p.metadata.uid ?? ''}@${p.metadata.resourceVersion ?? ''}`;
      seen.add(k);
      let v = memo.get(k);
      if (v === undefined) {
        const r = validateAccessPolicy({ apiVersion: p.apiVersion, kind: p.kind, metadata: p.metadata, spec: p.spec });
        v = r.ok ? r.policy : null;
        memo.set(k, v);
      }
      if (v) out.push(v);
    }
    for (const k of memo.keys()) if (!seen.has(k)) memo.delete(k);
    return out;
  };
}

function holdRule(policy: AccessPolicy | undefined, ruleName: string): ApprovalRuleInfo | undefined {
  const rule = policy?.spec.rules?.find((r) => r.name === ruleName);
  if (!rule || rule.action !== 'hold') return undefined;
  const a = rule.approval ?? {};
  return { approvers: a.approvers ?? {}, required: a.count ?? 1, ...(a.timeout ? { timeoutMs: parseDuration(a.timeout) } : {}) };
}

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster())
    throw new Error(`no Kubernetes cluster configured${file ? ` in ${file}` : ''}: pass --kubeconfig, set KUBECONFIG, or run in a cluster`);
  return kc;
}

function operatorNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  if (existsSync(SA_NAMESPACE_FILE)) return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim();
  return 'agent-warden';
}

async function readConfig(file: string | undefined, namespace: string): Promise<OperatorConfig> {
  if (!file) throw new Error('no operator configuration: pass --config FILE (the chart mounts it at /etc/warden-operator/config.yaml)');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read operator configuration ${file}: ${(e as Error).message}`);
  }
  return parseOperatorConfig(text, file, namespace);
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
