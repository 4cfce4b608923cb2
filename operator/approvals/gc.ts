// Expiry and garbage collection of ApprovalRequests. `sweepApprovalRequests` is pure (objects and
// a clock in, a plan out); `startApprovalSweeper` is the thin shell the operator runs periodically.
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from '../../common/log';
import {
  APPROVAL_API,
  DECIDED_CONDITION,
  expiredReason,
  isFinal,
  stateOf,
  type ApprovalRequestList,
  type ApprovalRequestObject,
} from '../../common/approvals/object';

export interface ObjectRef {
  namespace: string;
  name: string;
}

export interface SweepPlan {
  /** Pending past spec.expiresAt: set status.state expired with this finalReason. */
  expire: Array<ObjectRef & { resourceVersion?: string; finalReason: string }>;
  /** Left pending more than `ttlMs` ago: delete. */
  delete: ObjectRef[];
}

/** When the request left pending: the Decided condition, else the last decision, else its expiry or creation. */
export function finishedAt(obj: ApprovalRequestObject): number {
  const cond = obj.status?.conditions?.find((c) => c.type === DECIDED_CONDITION);
  const candidates = [
    cond?.lastTransitionTime,
    obj.status?.decisions?.at(-1)?.at,
    stateOf(obj) === 'expired' ? obj.spec?.expiresAt : undefined,
    obj.metadata.creationTimestamp,
  ];
  for (const c of candidates) {
    const t = c === undefined ? NaN : Date.parse(c);
    if (Number.isFinite(t)) return t;
  }
  // No usable time at all: treat it as long finished so it does not linger forever.
  return 0;
}

export function sweepApprovalRequests(objects: readonly ApprovalRequestObject[], now: Date, ttlMs: number): SweepPlan {
  const plan: SweepPlan = { expire: [], delete: [] };
  for (const obj of objects) {
    const ref = { namespace: obj.metadata.namespace ?? '', name: obj.metadata.name ?? '' };
    if (!ref.name) continue;
    const state = stateOf(obj);
    if (state === 'pending') {
      const expires = Date.parse(obj.spec?.expiresAt ?? '');
      // An unreadable expiry fails closed: the request expires now.
      if (!(now.getTime() < expires))
        plan.expire.push({ ...ref, resourceVersion: obj.metadata.resourceVersion, finalReason: expiredReason(obj) });
    } else if (isFinal(state) && finishedAt(obj) + ttlMs <= now.getTime()) {
      plan.delete.push(ref);
    }
  }
  return plan;
}

export interface ApprovalSweeperOptions {
  client: CustomObjectsApi;
  log: Logger;
  /** How long a decided, expired or cancelled request stays before it is deleted. */
  ttlMs: number;
  intervalMs: number;
  /** Only this namespace (default: every namespace; needs cluster-wide list). */
  namespace?: string;
  now?(): Date;
}

export interface ApprovalSweeper {
  stop(): void;
  /** One sweep now (tests, and the first run); resolves with what was done. */
  sweepNow(): Promise<SweepPlan>;
}

function httpCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

export function startApprovalSweeper(opts: ApprovalSweeperOptions): ApprovalSweeper {
  const { client, log } = opts;
  const { group, version, plural } = APPROVAL_API;
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  let running: Promise<SweepPlan> | undefined;
  let stopped = false;

  async function list(): Promise<ApprovalRequestObject[]> {
    const res = (
      opts.namespace
        ? await client.listNamespacedCustomObject({ group, version, plural, namespace: opts.namespace })
        : await client.listClusterCustomObject({ group, version, plural })
    ) as ApprovalRequestList;
    return res.items ?? [];
  }

  async function sweep(): Promise<SweepPlan> {
    const plan = sweepApprovalRequests(await list(), opts.now?.() ?? new Date(), opts.ttlMs);
    const done: SweepPlan = { expire: [], delete: [] };
    for (const e of plan.expire) {
      try {
        // resourceVersion makes this conditional: a decision that landed since the list wins (409).
        await client.patchNamespacedCustomObjectStatus(
          {
            group,
            version,
            plural,
            namespace: e.namespace,
            name: e.name,
            body: { metadata: { resourceVersion: e.resourceVersion }, status: { state: 'expired', finalReason: e.finalReason } },
          },
          mergePatch,
        );
        done.expire.push(e);
        log.info('approval request expired', { approval: `${e.namespace}/${e.name}` });
      } catch (err) {
        const code = httpCode(err);
        if (code === 409 || code === 404) continue;
        log.warn('cannot expire approval request', { approval: `${e.namespace}/${e.name}`, code, error: (err as Error).message });
      }
    }
    for (const d of plan.delete) {
      try {
        await client.deleteNamespacedCustomObject({ group, version, plural, namespace: d.namespace, name: d.name });
        done.delete.push(d);
        log.debug('approval request deleted after its TTL', { approval: `${d.namespace}/${d.name}` });
      } catch (err) {
        if (httpCode(err) === 404) continue;
        log.warn('cannot delete approval request', {
          approval: `${d.namespace}/${d.name}`,
          code: httpCode(err),
          error: (err as Error).message,
        });
      }
    }
    return done;
  }

  function sweepNow(): Promise<SweepPlan> {
    // one sweep at a time; a tick that finds one running shares its result
    running ??= sweep().finally(() => {
      running = undefined;
    });
    return running;
  }

  const tick = (): void => {
    if (stopped) return;
    sweepNow().catch((err: unknown) =>
      log.warn('approval sweep failed; retrying next interval', { code: httpCode(err), error: (err as Error).message }),
    );
  };
  const timer = setInterval(tick, opts.intervalMs);
  timer.unref?.();
  setImmediate(tick);
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
    sweepNow,
  };
}
