// Writes what reconcile decided: server-side apply of the ConfigMap and of the AccessPolicy's
// /status (field manager FIELD_MANAGER, force: the operator is the only writer of these fields),
// and events.k8s.io/v1 Events, de-duplicated so a resync does not repeat the same Event.
import { randomBytes } from 'node:crypto';
import { ACCESS_POLICY, API_VERSION, FIELD_MANAGER } from '../../common/k8s/names';
import type { KubeRest } from './kube-rest';
import type { ConfigMapObject, EventSpec, PolicyStatus } from './types';

const APPLY = 'application/apply-patch+yaml';
export const REPORTING_CONTROLLER = 'agentwarden.io/operator';

export interface ApplierOptions {
  rest: KubeRest;
  /** This replica (pod name): Events say which instance reported them. */
  identity: string;
  /** The same Event (object, reason, message) is not sent again within this window. */
  eventDedupMs?: number;
  /** Bound on remembered Events. */
  maxRemembered?: number;
  now?: () => Date;
}

export interface Applier {
  applyConfigMap(cm: ConfigMapObject): Promise<void>;
  applyPolicyStatus(ref: { namespace: string; name: string }, status: PolicyStatus): Promise<void>;
  /** Creates the Event unless it was sent recently; true when it was sent. */
  emitEvent(ev: EventSpec): Promise<boolean>;
}

export function createApplier(opts: ApplierOptions): Applier {
  const { rest } = opts;
  const now = opts.now ?? ((): Date => new Date());
  const dedupMs = opts.eventDedupMs ?? 30 * 60_000;
  const maxRemembered = opts.maxRemembered ?? 5000;
  const sent = new Map<string, number>();
  const query = { fieldManager: FIELD_MANAGER, force: 'true' };

  return {
    async applyConfigMap(cm) {
      const { namespace, name } = cm.metadata;
      await rest.request({
        method: 'PATCH',
        path: `/api/v1/namespaces/${enc(namespace)}/configmaps/${enc(name)}`,
        query,
        body: cm,
        contentType: APPLY,
      });
    },

    async applyPolicyStatus(ref, status) {
      const body = { apiVersion: API_VERSION, kind: ACCESS_POLICY.kind, metadata: { name: ref.name, namespace: ref.namespace }, status };
      await rest.request({
        method: 'PATCH',
        path: `/apis/${API_VERSION}/namespaces/${enc(ref.namespace)}/${ACCESS_POLICY.plural}/${enc(ref.name)}/status`,
        query,
        body,
        contentType: APPLY,
      });
    },

    async emitEvent(ev) {
      const k = `${ev.involvedObject.uid ?? ''}|${ev.involvedObject.namespace ?? ''}/${ev.involvedObject.name}|${ev.type}|${ev.reason}|${ev.message}`;
      const t = now().getTime();
      const last = sent.get(k);
      if (last !== undefined && t - last < dedupMs) return false;
      const namespace = ev.involvedObject.namespace ?? 'default';
      const body = {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name: `${ev.involvedObject.name}.${randomBytes(8).toString('hex')}`.slice(-253), namespace },
        eventTime: microTime(now()),
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: opts.identity.slice(0, 128),
        action: 'Reconcile',
        type: ev.type,
        reason: ev.reason,
        note: ev.message,
        regarding: ev.involvedObject,
      };
      await rest.request({
        method: 'POST',
        path: `/apis/events.k8s.io/v1/namespaces/${enc(namespace)}/events`,
        body,
        contentType: 'application/json',
      });
      sent.delete(k);
      sent.set(k, t);
      // forget the oldest (Map keeps insertion order)
      while (sent.size > maxRemembered) sent.delete(sent.keys().next().value as string);
      return true;
    },
  };
}

function enc(s: string | undefined): string {
  if (!s) throw new Error('object has no namespace or name');
  return encodeURIComponent(s);
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
