// Keeps the webhook's serving certificate in a kubernetes.io/tls Secret and its CA bundle in the
// webhook configurations. Every operator replica runs this: each re-reads the Secret periodically,
// writes it only when planCertificates says so (a stale resourceVersion means another replica won:
// re-read and use its certificate), makes both webhook configurations trust the Secret's CA bundle,
// then hot-reloads the server. In cert-manager mode it only reads the Secret cert-manager keeps.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Secret,
} from '@kubernetes/client-node';
import type { Logger } from '../../common/log';
import { apiStatus } from '../../common/k8s/api-error';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../../common/k8s/names';
import { planCertificates, serviceDnsNames, type WebhookCertMaterial } from './ca';

/** Keys of the webhook Secret (kubernetes.io/tls plus the CA). */
export const SECRET_KEYS = { cert: 'tls.crt', key: 'tls.key', caBundle: 'ca.crt', caKey: 'ca.key' } as const;
export const DEFAULT_CHECK_INTERVAL_MS = 60_000;
const WRITE_ATTEMPTS = 3;

export type WebhookKind = 'mutating' | 'validating';
export type CertMode = 'self-signed' | 'cert-manager';

export interface TlsSecret {
  /** Decoded values of the Secret's data. */
  data: Record<string, string>;
  resourceVersion: string;
}

export interface SecretWrite {
  namespace: string;
  name: string;
  /** Plain (not base64) values. */
  data: Record<string, string>;
  /** Absent: create. Present: replace only if the Secret is still at this version. */
  resourceVersion?: string;
}

/** What a webhook configuration says about each of its webhooks. */
export interface WebhookEntry {
  name: string;
  /** base64 of the PEM bundle, as stored. */
  caBundle?: string;
}

export interface JsonPatchOp {
  op: 'test' | 'add' | 'replace';
  path: string;
  value?: unknown;
}

/** Thrown by CertClient writes that lost a race: the Secret exists already or moved on. */
export class CertConflictError extends Error {
  readonly code = 'Conflict';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CertConflictError';
  }
}

/** The few API calls the certificate manager needs (kubeCertClient implements them). */
export interface CertClient {
  /** undefined when the Secret does not exist. */
  readSecret(namespace: string, name: string): Promise<TlsSecret | undefined>;
  /** Creates or replaces; throws CertConflictError when another writer got there first. */
  writeSecret(w: SecretWrite): Promise<TlsSecret>;
  /** undefined when the configuration does not exist. */
  readWebhooks(kind: WebhookKind, name: string): Promise<WebhookEntry[] | undefined>;
  patchWebhooks(kind: WebhookKind, name: string, patch: JsonPatchOp[]): Promise<void>;
}

export interface CertManagerOptions {
  client: CertClient;
  namespace: string;
  secretName: string;
  /** The webhook Service; the serving certificate names it. */
  serviceName: string;
  webhookConfigNames: { mutating: string; validating: string };
  log: Logger;
  /** Called after the served certificate changed (wire to server.reloadTls). */
  onRotate(): void;
  now?: () => Date;
  checkIntervalMs?: number;
  /** cert-manager: read the Secret cert-manager maintains, write and patch nothing. */
  mode?: CertMode;
}

export interface CertManager {
  tls(): { key: string; cert: string };
  /** One check now (the periodic timer calls the same). */
  check(): Promise<void>;
  stop(): void;
}

export function toSecretData(m: WebhookCertMaterial): Record<string, string> {
  return { [SECRET_KEYS.cert]: m.cert, [SECRET_KEYS.key]: m.key, [SECRET_KEYS.caBundle]: m.caBundle, [SECRET_KEYS.caKey]: m.caKey };
}

export function fromSecretData(d: Record<string, string>): Partial<WebhookCertMaterial> {
  return { cert: d[SECRET_KEYS.cert], key: d[SECRET_KEYS.key], caBundle: d[SECRET_KEYS.caBundle], caKey: d[SECRET_KEYS.caKey] };
}

/**
 * JSON Patch setting every webhook's clientConfig.caBundle to bundleB64; empty when all match.
 * Each change is guarded by a `test` of the webhook's name, so a concurrent reorder fails the
 * patch instead of putting a bundle on the wrong webhook.
 */
export function caBundlePatch(webhooks: WebhookEntry[], bundleB64: string): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  webhooks.forEach((w, i) => {
    if (w.caBundle === bundleB64) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
    ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: bundleB64 });
  });
  return ops;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A key and certificate that belong together, or a reason they do not. */
function servingPairProblem(cert: string | undefined, key: string | undefined): string | undefined {
  if (!cert || !key) return `missing ${!cert ? SECRET_KEYS.cert : SECRET_KEYS.key}`;
  try {
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) return `${SECRET_KEYS.key} does not match ${SECRET_KEYS.cert}`;
  } catch (err) {
    return `${SECRET_KEYS.cert}/${SECRET_KEYS.key} do not parse: ${errorMessage(err)}`;
  }
  return undefined;
}

function certSummary(pem: string): Record<string, unknown> {
  const c = new X509Certificate(pem);
  return { serial: c.serialNumber, notAfter: c.validTo, issuer: c.issuer.replace(/\n/g, ', ') };
}

interface Served {
  tls: () => { key: string; cert: string };
  /** Serves cert and key from now on; true when they replace a different pair (never on the first call). */
  update(cert: string, key: string): boolean;
}

function servedPair(): Served {
  let current: { key: string; cert: string } | undefined;
  return {
    tls: () => current!,
    update: (cert, key) => {
      if (current && current.cert === cert && current.key === key) return false;
      const replaced = current !== undefined;
      current = { cert, key };
      return replaced;
    },
  };
}

/**
 * Runs one check (its failure fails the start), then one every checkIntervalMs, never two at once;
 * later failures are logged and the current certificate kept.
 */
async function startChecks(
  opts: { log: Logger; checkIntervalMs?: number },
  served: Served,
  run: () => Promise<void>,
): Promise<CertManager> {
  let running: Promise<void> | undefined;
  const check = (): Promise<void> => {
    running ??= run().finally(() => (running = undefined));
    return running;
  };
  await check();
  const timer = setInterval(() => {
    check().catch((err: unknown) =>
      opts.log.error('webhook certificate check failed; keeping the current certificate', { error: errorMessage(err) }),
    );
  }, opts.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS);
  timer.unref();
  return { tls: served.tls, check, stop: () => clearInterval(timer) };
}

/** Self-managed CA and serving certificate (or, with mode 'cert-manager', watchTlsSecret). */
export async function startCertManager(opts: CertManagerOptions): Promise<CertManager> {
  if (opts.mode === 'cert-manager') return watchTlsSecret(opts);
  const { client, namespace, secretName, log } = opts;
  const now = opts.now ?? ((): Date => new Date());
  const dnsNames = serviceDnsNames(opts.serviceName, namespace);
  const where = `${namespace}/${secretName}`;
  const served = servedPair();

  const settleSecret = async (): Promise<WebhookCertMaterial> => {
    for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
      const secret = await client.readSecret(namespace, secretName);
      const plan = await planCertificates(secret ? fromSecretData(secret.data) : undefined, { dnsNames, now: now() });
      if (!plan.changed) return plan.material;
      try {
        await client.writeSecret({
          namespace,
          name: secretName,
          data: toSecretData(plan.material),
          resourceVersion: secret?.resourceVersion,
        });
        log.info('webhook certificates written', { secret: where, reason: plan.reason, ...certSummary(plan.material.cert) });
        return plan.material;
      } catch (err) {
        if (!(err instanceof CertConflictError)) throw err;
        log.info('another replica wrote the webhook Secret first; re-reading it', { secret: where, attempt });
      }
    }
    throw new Error(`webhook Secret ${where}: still changing under us after ${WRITE_ATTEMPTS} attempts`);
  };

  const trustBundle = async (kind: WebhookKind, name: string, bundle: string): Promise<void> => {
    const hooks = await client.readWebhooks(kind, name);
    if (!hooks) {
      log.warn('webhook configuration not found; cannot set its caBundle', { kind, name });
      return;
    }
    const patch = caBundlePatch(hooks, Buffer.from(bundle).toString('base64'));
    if (patch.length === 0) return;
    await client.patchWebhooks(kind, name, patch);
    log.info('webhook caBundle updated', { kind, name, webhooks: patch.length / 2 });
  };

  const run = async (): Promise<void> => {
    const m = await settleSecret();
    // Trust first, serve second: until the bundle is patched the old certificate keeps verifying.
    await trustBundle('mutating', opts.webhookConfigNames.mutating, m.caBundle);
    await trustBundle('validating', opts.webhookConfigNames.validating, m.caBundle);
    if (!served.update(m.cert, m.key)) return;
    log.info('webhook serving certificate rotated', { secret: where, ...certSummary(m.cert) });
    notify(opts, log);
  };

  return startChecks(opts, served, run);
}

function notify(opts: { onRotate(): void }, log: Logger): void {
  try {
    opts.onRotate();
  } catch (err) {
    log.error('reloading the webhook certificate failed; still serving the previous one', { error: errorMessage(err) });
  }
}

export type WatchTlsSecretOptions = Pick<
  CertManagerOptions,
  'client' | 'namespace' | 'secretName' | 'log' | 'onRotate' | 'checkIntervalMs'
>;

/**
 * Serves the certificate someone else (cert-manager) keeps in a kubernetes.io/tls Secret; patches
 * nothing (cert-manager's CA injector owns caBundle). Fails to start when the Secret is absent or
 * unusable; later a bad update is logged and the previous certificate kept.
 */
export async function watchTlsSecret(opts: WatchTlsSecretOptions): Promise<CertManager> {
  const where = `${opts.namespace}/${opts.secretName}`;
  const served = servedPair();

  const run = async (): Promise<void> => {
    const secret = await opts.client.readSecret(opts.namespace, opts.secretName);
    if (!secret) throw new Error(`webhook TLS Secret ${where} not found (is cert-manager's Certificate ready?)`);
    const cert = secret.data[SECRET_KEYS.cert];
    const key = secret.data[SECRET_KEYS.key];
    const problem = servingPairProblem(cert, key);
    if (problem) throw new Error(`webhook TLS Secret ${where}: ${problem}`);
    if (!served.update(cert, key)) return;
    opts.log.info('webhook serving certificate changed in its Secret', { secret: where, ...certSummary(cert) });
    notify(opts, opts.log);
  };

  return startChecks(opts, served, run);
}

// ---- CertClient over @kubernetes/client-node ----

/** The API server's own message from an ApiException (its Status body), never the request body. */
function apiError(err: unknown, what: string): Error {
  const { code, message } = apiStatus(err);
  return new Error(`${what}: ${code === undefined ? message : `HTTP ${code}: ${message}`}`, { cause: err });
}

function decodeData(data: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

function toTlsSecret(s: V1Secret): TlsSecret {
  return { data: decodeData(s.data), resourceVersion: s.metadata?.resourceVersion ?? '' };
}

/** CertClient over CoreV1Api (Secrets) and AdmissionregistrationV1Api (webhook configurations). */
export function kubeCertClient(kc: KubeConfig): CertClient {
  const core = kc.makeApiClient(CoreV1Api);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

  return {
    async readSecret(namespace, name) {
      try {
        return toTlsSecret(await core.readNamespacedSecret({ namespace, name }));
      } catch (err) {
        if (apiStatus(err).code === 404) return undefined;
        throw apiError(err, `read Secret ${namespace}/${name}`);
      }
    },

    async writeSecret(w) {
      const body: V1Secret = {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: {
          name: w.name,
          namespace: w.namespace,
          labels: { [MANAGED_BY_LABEL]: MANAGED_BY },
          ...(w.resourceVersion ? { resourceVersion: w.resourceVersion } : {}),
        },
        data: Object.fromEntries(Object.entries(w.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      };
      const what = `${w.resourceVersion ? 'replace' : 'create'} Secret ${w.namespace}/${w.name}`;
      try {
        const s = w.resourceVersion
          ? await core.replaceNamespacedSecret({ namespace: w.namespace, name: w.name, body })
          : await core.createNamespacedSecret({ namespace: w.namespace, body });
        return toTlsSecret(s);
      } catch (err) {
        // 409: AlreadyExists on create, Conflict on a stale resourceVersion.
        if (apiStatus(err).code === 409) throw new CertConflictError(`${what}: another writer changed it first`, { cause: err });
        throw apiError(err, what);
      }
    },

    async readWebhooks(kind, name) {
      try {
        const cfg =
          kind === 'mutating'
            ? await admission.readMutatingWebhookConfiguration({ name })
            : await admission.readValidatingWebhookConfiguration({ name });
        return (cfg.webhooks ?? []).map((h) => ({ name: h.name, caBundle: h.clientConfig?.caBundle }));
      } catch (err) {
        if (apiStatus(err).code === 404) return undefined;
        throw apiError(err, `read ${kind} webhook configuration ${name}`);
      }
    },

    async patchWebhooks(kind, name, patch) {
      try {
        if (kind === 'mutating') await admission.patchMutatingWebhookConfiguration({ name, body: patch }, jsonPatch);
        else await admission.patchValidatingWebhookConfiguration({ name, body: patch }, jsonPatch);
      } catch (err) {
        throw apiError(err, `patch caBundle of ${kind} webhook configuration ${name}`);
      }
    },
  };
}
