// The Kubernetes approval back end (WARDEN_APPROVALS=kubernetes): each hold becomes an
// ApprovalRequest object in the pod's namespace, and the sidecar watches it until it leaves
// pending. Approvers decide through the API server (kubectl warden approve|deny), whose admission
// webhook records who decided, so this back end accepts no decisions itself. Fail closed: an
// object that cannot be created denies the hold with the reason; a broken watch is re-established;
// the request's expiry is also enforced here, so a lost operator cannot keep a hold open.
import fs from 'node:fs';
import path from 'node:path';
import { CustomObjectsApi, KubeConfig, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import {
  API_VERSION,
  APPROVAL_REQUEST,
  GROUP,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  PATHS,
  SIDECAR_ENV,
  TOKEN_FILE,
  VERSION,
} from '../../common/k8s/names';
import { apiErrorMessage, apiStatus } from '../../common/k8s/api-error';
import { silentLogger, type Logger } from '../../common/log';
import type { Identity } from '../../common/policy/types';
import {
  APPROVAL_API,
  isFinal,
  stateOf,
  type ApprovalRequestObject,
  type ApprovalRequestList,
  type Verdict,
} from '../../common/approvals/object';
import { createApprovalsHandler, type AdminHandler } from './admin-api';
import { createApprovalGate, type CombinedApprovalGate } from './gate';
import { LocalApprovalStore, newApprovalId } from './local-store';
import { ApprovalError, type ApprovalBackend, type ApprovalRequest, type ListFilter, type NewApprovalRequest } from './types';
import { formatDuration } from '../../common/policy/syntax';
import { displaySafe } from '../../common/display-escape';

const SERVICEACCOUNT_CA = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';
/** Label naming the pod whose sidecar opened the request (kubectl get ar -l agentwarden.io/pod=NAME). */
export const POD_LABEL = `${GROUP}/pod`;

/** The API object as the record every approval consumer (gate, admin API, CLI) reads. */
export function objectToRecord(obj: ApprovalRequestObject): ApprovalRequest {
  const s = obj.spec;
  const rec: ApprovalRequest = {
    id: obj.metadata.name ?? '',
    policy: s.policy,
    rule: s.rule,
    target: s.target ?? '',
    requester: { subject: s.requester?.subject ?? '', groups: [...(s.requester?.groups ?? [])] },
    operation: { kind: s.operation.kind, display: s.operation.display, digest: s.operation.digest },
    approvers: { users: [...(s.approvers?.users ?? [])], groups: [...(s.approvers?.groups ?? [])] },
    required: s.required,
    createdAt: obj.metadata.creationTimestamp ?? '',
    expiresAt: s.expiresAt,
    state: stateOf(obj),
    decisions: (obj.status?.decisions ?? []).map((d) => ({
      by: d.by ?? '',
      groups: [...(d.groups ?? [])],
      verdict: d.verdict,
      reason: d.reason ?? '',
      at: d.at ?? '',
    })),
  };
  if (obj.status?.finalReason) rec.finalReason = obj.status.finalReason;
  return rec;
}

export interface SidecarKubeConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** Where the projected token is mounted (default PATHS.tokenDir). */
  tokenDir?: string;
  /** CA bundles tried in order (default: ca.crt beside the token, then the service account's). */
  caFiles?: string[];
}

/**
 * KUBECONFIG when set (development, tests); otherwise in-cluster: the API server from
 * KUBERNETES_SERVICE_HOST/PORT, the projected token (re-read as the kubelet rotates it) and the
 * cluster CA. Throws with what is missing; TLS verification is never turned off.
 */
export function sidecarKubeConfig(opts: SidecarKubeConfigOptions = {}): KubeConfig {
  const env = opts.env ?? process.env;
  const kc = new KubeConfig();
  if (env.KUBECONFIG) {
    kc.loadFromFile(env.KUBECONFIG.split(path.delimiter)[0]);
    return kc;
  }
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new Error(
      'neither KUBECONFIG nor KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT is set, so the Kubernetes API server is unknown',
    );
  const tokenFile = path.join(opts.tokenDir ?? PATHS.tokenDir, TOKEN_FILE);
  if (!fs.existsSync(tokenFile)) throw new Error(`no service account token at ${tokenFile} (the projected token volume is missing)`);
  const caFiles = opts.caFiles ?? [path.join(opts.tokenDir ?? PATHS.tokenDir, 'ca.crt'), SERVICEACCOUNT_CA];
  const caFile = caFiles.find((f) => fs.existsSync(f));
  if (!caFile) throw new Error(`no cluster CA certificate (looked at ${caFiles.join(', ')})`);
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  kc.loadFromClusterAndUser(
    { name: 'in-cluster', server, caFile, skipTLSVerify: false },
    { name: 'warden-sidecar', authProvider: { name: 'tokenFile', config: { tokenFile } } },
  );
  return kc;
}

function abortError(): Error {
  return Object.assign(new Error('wait aborted'), { name: 'AbortError' });
}

export interface KubeApprovalBackendOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** This pod's name, put on each request as a label. */
  podName?: string;
  log?: Logger;
  /** Pause before re-establishing a watch that ended or failed. Default 1s. */
  rewatchDelayMs?: number;
  /** How long creating the object may take before the hold is denied. Default 10s. */
  createTimeoutMs?: number;
}

interface Local {
  timeoutMs: number;
  /** Resolves every wait on this request at once (cancel, local expiry). */
  waiters: Set<(rec: ApprovalRequest) => void>;
}

export class KubeApprovalBackend implements ApprovalBackend {
  private readonly api: CustomObjectsApi;
  private readonly watcher: Watch;
  private readonly log: Logger;
  private readonly rewatchMs: number;
  private readonly local = new Map<string, Local>();
  private readonly mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  private readonly ref: { group: string; version: string; plural: string; namespace: string };

  constructor(private readonly opts: KubeApprovalBackendOptions) {
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(opts.kubeConfig);
    this.log = opts.log ?? silentLogger;
    this.rewatchMs = opts.rewatchDelayMs ?? 1000;
    this.ref = { ...APPROVAL_API, namespace: opts.namespace };
  }

  async create(req: NewApprovalRequest): Promise<ApprovalRequest> {
    if (!(req.timeoutMs > 0) || !Number.isFinite(req.timeoutMs)) {
      throw new ApprovalError('invalid_request', `approval timeout must be a positive duration, got ${req.timeoutMs}ms`);
    }
    const required = req.required ?? 1;
    if (!Number.isInteger(required) || required < 1)
      throw new ApprovalError('invalid_request', `approval count must be a positive integer, got ${required}`);
    const id = newApprovalId();
    const body: ApprovalRequestObject = {
      apiVersion: API_VERSION,
      kind: APPROVAL_REQUEST.kind,
      metadata: {
        name: id,
        namespace: this.opts.namespace,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY, ...(this.opts.podName ? { [POD_LABEL]: this.opts.podName } : {}) },
      },
      spec: {
        policy: req.policy,
        rule: req.rule,
        target: req.target,
        // `kubectl get` prints the display raw (a printer column and -o yaml alike): escaped again
        // here in case a caller built the operation without sqlOperation/httpOperation.
        operation: { ...req.operation, display: displaySafe(req.operation.display) },
        approvers: { users: [...(req.approvers?.users ?? [])], groups: [...(req.approvers?.groups ?? [])] },
        required,
        expiresAt: new Date(Date.now() + req.timeoutMs).toISOString(),
        // spec.requester is stamped by the admission webhook from this sidecar's own identity;
        // the caller it verified is recorded for the approver (and may not decide either).
        ...(req.requester.subject ? { onBehalfOf: { subject: req.requester.subject, groups: [...req.requester.groups] } } : {}),
      },
    };
    let created: ApprovalRequestObject;
    let timer: NodeJS.Timeout | undefined;
    const limit = this.opts.createTimeoutMs ?? 10_000;
    try {
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the API server within ${formatDuration(limit)}`)), limit);
      });
      created = (await Promise.race([this.api.createNamespacedCustomObject({ ...this.ref, body }), timeout])) as ApprovalRequestObject;
    } catch (e) {
      throw new Error(`the approval request could not be created in namespace ${this.opts.namespace} (${apiErrorMessage(e)})`);
    } finally {
      clearTimeout(timer);
    }
    this.local.set(id, { timeoutMs: req.timeoutMs, waiters: new Set() });
    this.markPending(created);
    return objectToRecord(created);
  }

  /** Cosmetic (kubectl shows State pending): the API server drops status on create. Best effort. */
  private markPending(obj: ApprovalRequestObject): void {
    const name = obj.metadata.name!;
    void this.api
      .patchNamespacedCustomObjectStatus(
        { ...this.ref, name, body: { metadata: { resourceVersion: obj.metadata.resourceVersion }, status: { state: 'pending' } } },
        this.mergePatch,
      )
      .catch((e: unknown) => this.log.debug('could not mark the approval request pending', { approval: name, error: apiErrorMessage(e) }));
  }

  async get(id: string): Promise<ApprovalRequest | undefined> {
    try {
      return objectToRecord((await this.api.getNamespacedCustomObject({ ...this.ref, name: id })) as ApprovalRequestObject);
    } catch (e) {
      if (apiStatus(e).code === 404) return undefined;
      throw e;
    }
  }

  async list(filter: ListFilter = {}): Promise<ApprovalRequest[]> {
    const res = (await this.api.listNamespacedCustomObject({ ...this.ref })) as ApprovalRequestList;
    return (res.items ?? [])
      .map(objectToRecord)
      .filter((r) => filter.state === undefined || r.state === filter.state)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async decide(id: string, _decider: Identity, _verdict: Verdict, _reason?: string): Promise<ApprovalRequest> {
    throw new ApprovalError(
      'invalid_request',
      `decisions on approval request ${id} go through the Kubernetes API: kubectl warden approve|deny ${id} -n ${this.opts.namespace}`,
    );
  }

  async cancel(id: string, reason = 'the agent disconnected before a decision'): Promise<ApprovalRequest | undefined> {
    const finalReason = `cancelled: ${reason}`;
    let rec: ApprovalRequest | undefined;
    try {
      const obj = (await this.api.patchNamespacedCustomObjectStatus(
        { ...this.ref, name: id, body: { status: { state: 'cancelled', finalReason } } },
        this.mergePatch,
      )) as ApprovalRequestObject;
      rec = objectToRecord(obj);
    } catch (e) {
      // Already decided (the webhook refuses), gone, or the API is away: nobody waits for the answer.
      this.log.info('could not cancel the approval request', { approval: id, error: apiErrorMessage(e) });
      rec = await this.get(id).catch(() => undefined);
    }
    const entry = this.local.get(id);
    if (entry && rec) for (const w of [...entry.waiters]) w(rec.state === 'pending' ? { ...rec, state: 'cancelled', finalReason } : rec);
    return rec;
  }

  /** Resolves once the object leaves pending, it is deleted, or its expiry passes (checked here too). */
  wait(id: string, signal?: AbortSignal): Promise<ApprovalRequest> {
    if (signal?.aborted) return Promise.reject(abortError());
    const entry = this.local.get(id) ?? { timeoutMs: 0, waiters: new Set() };
    return new Promise<ApprovalRequest>((resolve, reject) => {
      let settled = false;
      let last: ApprovalRequest | undefined;
      let watch: AbortController | undefined;
      let expiry: NodeJS.Timeout | undefined;
      let retry: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        settled = true;
        entry.waiters.delete(finish);
        clearTimeout(expiry);
        clearTimeout(retry);
        watch?.abort();
        signal?.removeEventListener('abort', onAbort);
      };
      const finish = (rec: ApprovalRequest): void => {
        if (settled) return;
        cleanup();
        if (isFinal(rec.state)) this.local.delete(id);
        resolve(rec);
      };
      const onAbort = (): void => {
        if (settled) return;
        cleanup();
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      entry.waiters.add(finish);

      const armExpiry = (rec: ApprovalRequest): void => {
        if (expiry !== undefined) return;
        const ms = Math.max(0, Date.parse(rec.expiresAt) - Date.now());
        expiry = setTimeout(() => {
          const got =
            rec.required > 1 && last
              ? ` (${last.decisions.filter((d) => d.verdict === 'approve').length} of ${rec.required} approvals)`
              : '';
          const after = entry.timeoutMs > 0 ? ` after ${formatDuration(entry.timeoutMs)}` : ` at ${rec.expiresAt}`;
          finish({ ...(last ?? rec), state: 'expired', finalReason: `approval request ${id} expired${after} without a decision${got}` });
        }, ms);
        expiry.unref?.();
      };
      const seen = (obj: ApprovalRequestObject): void => {
        const rec = objectToRecord(obj);
        last = rec;
        armExpiry(rec);
        if (isFinal(rec.state)) finish(rec);
      };
      const again = (): void => {
        if (settled) return;
        retry = setTimeout(() => void follow(), this.rewatchMs);
        retry.unref?.();
      };
      const follow = async (): Promise<void> => {
        let rv: string | undefined;
        try {
          const obj = (await this.api.getNamespacedCustomObject({ ...this.ref, name: id })) as ApprovalRequestObject;
          if (settled) return;
          seen(obj);
          rv = obj.metadata.resourceVersion;
        } catch (e) {
          if (settled) return;
          if (apiStatus(e).code === 404) {
            return finish({
              ...(last ?? this.placeholder(id)),
              state: 'cancelled',
              finalReason: `approval request ${id} was deleted before a decision`,
            });
          }
          this.log.warn('cannot read the approval request; retrying', { approval: id, error: apiErrorMessage(e) });
          return again();
        }
        if (settled) return;
        const pathname = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(this.opts.namespace)}/${APPROVAL_REQUEST.plural}`;
        try {
          const ctl = await this.watcher.watch(
            pathname,
            { fieldSelector: `metadata.name=${id}`, resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 300 },
            (type: string, obj: ApprovalRequestObject) => {
              if (type === 'ADDED' || type === 'MODIFIED') seen(obj);
              else if (type === 'DELETED')
                finish({
                  ...(last ?? objectToRecord(obj)),
                  state: 'cancelled',
                  finalReason: `approval request ${id} was deleted before a decision`,
                });
              // ERROR (410 Expired and the like) ends the stream; `done` then starts over with a fresh GET
            },
            (err: unknown) => {
              if (err && !settled) this.log.debug('approval watch ended; re-watching', { approval: id, error: apiErrorMessage(err) });
              again();
            },
          );
          if (settled) ctl.abort();
          else watch = ctl;
        } catch (e) {
          this.log.warn('cannot watch the approval request; retrying', { approval: id, error: apiErrorMessage(e) });
          again();
        }
      };
      void follow();
    });
  }

  private placeholder(id: string): ApprovalRequest {
    return {
      id,
      policy: '',
      rule: '',
      target: '',
      requester: { subject: '', groups: [] },
      operation: { kind: 'sql', display: '', digest: '' },
      approvers: { users: [], groups: [] },
      required: 1,
      createdAt: '',
      expiresAt: new Date().toISOString(),
      state: 'cancelled',
      decisions: [],
    };
  }
}

export interface KubeApprovalService {
  gate: CombinedApprovalGate;
  /** GET /approvals on the admin port reads the objects; decisions there are refused (use kubectl warden). */
  api: AdminHandler;
  backend?: KubeApprovalBackend;
}

/**
 * What the sidecar runs with WARDEN_APPROVALS=kubernetes. Misconfiguration (no namespace, no
 * token, no CA) denies every hold with the reason instead of failing the sidecar's start; an
 * approval request that cannot be created denies that hold, saying why.
 */
export function kubeApprovalService(opts: {
  log: Logger;
  env?: NodeJS.ProcessEnv;
  kubeConfig?: KubeConfig;
  rewatchDelayMs?: number;
}): KubeApprovalService {
  const env = opts.env ?? process.env;
  const { log } = opts;
  let backend: KubeApprovalBackend | undefined;
  let why: string | undefined;
  const namespace = env[SIDECAR_ENV.podNamespace];
  if (!namespace) {
    why = `${SIDECAR_ENV.approvals}=kubernetes needs ${SIDECAR_ENV.podNamespace}, the namespace to create ApprovalRequests in`;
  } else {
    try {
      const kubeConfig = opts.kubeConfig ?? sidecarKubeConfig({ env });
      backend = new KubeApprovalBackend({
        kubeConfig,
        namespace,
        podName: env[SIDECAR_ENV.podName],
        log,
        rewatchDelayMs: opts.rewatchDelayMs,
      });
    } catch (e) {
      why = `the Kubernetes API is not configured (${(e as Error).message})`;
    }
  }
  if (why) log.error('Kubernetes approvals are unavailable; every hold is denied', { reason: why });
  // The gate turns a back end that fails (the object cannot be created) into a denial with the reason.
  // Misconfigured: an empty store behind a gate that denies every hold and an API that lists nothing.
  const store = backend ?? new LocalApprovalStore();
  const gate = createApprovalGate(store, {
    undecidable: () => why,
    onCreated: (r) =>
      log.info('operation held for approval', { approval: r.id, namespace, rule: r.rule, target: r.target, expiresAt: r.expiresAt }),
  });
  const api = createApprovalsHandler({ backend: store, acceptDecisions: false });
  return { gate, api, backend };
}
