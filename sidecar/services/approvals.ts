// The approval service: the gate held operations wait at, and the back end that decides them
// (Kubernetes ApprovalRequests, or the standalone store with its admin API and notifications).
import type { Logger } from '../../common/log';
import { IdentityError } from '../../common/identity/errors';
import type { ApprovalGate, HttpApprovalGate, McpApprovalGate } from '../approvals/hold';
import { createApprovalsHandler, type AdminHandler } from '../approvals/admin-api';
import { createApprovalGate } from '../approvals/gate';
import { LocalApprovalStore } from '../approvals/local-store';
import { createNotifier, type Notifier, type NotifyTarget } from '../approvals/notify';
import type { SecretStore } from '../secrets';
import type { CallerTokens } from './identity';

export interface ApprovalService {
  gate: ApprovalGate & HttpApprovalGate & McpApprovalGate;
  store?: LocalApprovalStore;
  api?: AdminHandler;
  notifier?: Notifier;
}

export interface ApprovalServiceOptions {
  /** A gate given by the caller (tests) replaces the whole service. */
  approvals?: ApprovalGate;
  /** Loopback callers may decide holds as the local OS user. */
  localApprovals?: boolean;
  callerTokens: CallerTokens;
  secrets: SecretStore;
  log: Logger;
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
export function approvalService(opts: ApprovalServiceOptions): ApprovalService {
  const { callerTokens, secrets, log } = opts;
  if (opts.approvals) return { gate: opts.approvals as ApprovalGate & HttpApprovalGate & McpApprovalGate };
  if (process.env.WARDEN_APPROVALS === 'kubernetes') {
    // Holds become ApprovalRequest objects (the operator sets this). Loaded lazily so that a
    // standalone sidecar never loads the Kubernetes client.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, synchronously
    const { kubeApprovalService } = require('../approvals/kube-backend') as typeof import('../approvals/kube-backend');
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
      if (!verify)
        return Promise.reject(new IdentityError('missing_token', 'this policy has no spec.identity, so no approver token can be verified'));
      return verify(t);
    },
    onDecision: (id, by, verdict) => log.info('approval decided', { approval: id, by: by.subject, verdict }),
  });
  return { gate, store, api, notifier };
}
