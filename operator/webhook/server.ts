// The admission webhooks' one HTTPS server. It only parses AdmissionReviews and wraps what the
// pure handlers return; deciding and patching live in the handlers. A handler that fails denies
// (fail closed); the webhook configurations' failurePolicy covers the server being unreachable.
import * as https from 'node:https';
import type * as http from 'node:http';
import type { Logger } from '../../common/log';
import type { Metrics } from '../../common/metrics';
import type { AdmissionHandler, AdmissionResponse, AdmissionReview } from './types';

/** The API server sends at most ~3 MiB objects (etcd's limit is 1.5 MiB; old + new object). */
export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;
/** Longer than Go's 90 s idle timeout, so the API server closes idle connections first and never
 * sends a review on a connection we are closing (a POST it would not retry). */
const KEEP_ALIVE_MS = 120_000;
/** The API server caps timeoutSeconds at 30. */
const REQUEST_TIMEOUT_MS = 35_000;
const DRAIN_TIMEOUT_MS = 10_000;
/** Upper bounds (seconds) of the duration histogram; the mutate handler aims at < 5 ms. */
const DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface WebhookServerOptions {
  port: number;
  host?: string;
  tls(): { key: string; cert: string };
  handlers: Record<string, AdmissionHandler>;
  log: Logger;
  metrics?: Metrics;
  maxBodyBytes?: number;
}

export interface WebhookServer {
  port: number;
  /** Re-reads opts.tls() for new connections; throws (keeping the old certificate) when it is unusable. */
  reloadTls(): void;
  /** Stops accepting, lets in-flight reviews finish, then closes. */
  close(): Promise<void>;
}

export type ParsedReview = { ok: true; review: AdmissionReview & { request: { uid: string } } } | { ok: false; error: string };

/** Validates the AdmissionReview envelope; the handler validates the object it cares about. */
export function parseAdmissionReview(body: Buffer | string): ParsedReview {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString());
  } catch (err) {
    return { ok: false, error: `body is not valid JSON: ${(err as Error).message}` };
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, error: 'body is not a JSON object' };
  const r = doc as Record<string, unknown>;
  if (r.apiVersion !== 'admission.k8s.io/v1')
    return { ok: false, error: `apiVersion must be admission.k8s.io/v1, got ${JSON.stringify(r.apiVersion)}` };
  if (r.kind !== 'AdmissionReview') return { ok: false, error: `kind must be AdmissionReview, got ${JSON.stringify(r.kind)}` };
  const req = r.request as Record<string, unknown> | undefined;
  if (!req || typeof req !== 'object' || Array.isArray(req)) return { ok: false, error: 'request is missing' };
  if (typeof req.uid !== 'string' || req.uid === '') return { ok: false, error: 'request.uid is missing' };
  return { ok: true, review: doc as AdmissionReview & { request: { uid: string } } };
}

/** The response envelope; uid always comes from the request, whatever the handler returned. */
export function wrapResponse(uid: string, response: Omit<AdmissionResponse, 'uid'> & { uid?: string }): AdmissionReview {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { ...response, uid } };
}

interface ServerMetrics {
  request(path: string, result: string): void;
  duration(path: string, seconds: number): void;
}

function serverMetrics(m: Metrics | undefined): ServerMetrics {
  if (!m) return { request: () => undefined, duration: () => undefined };
  const requests = m.counter('warden_webhook_requests_total', 'Admission webhook requests by path and result');
  const durations = m.histogram('warden_webhook_duration_seconds', 'Admission review duration', DURATION_BUCKETS);
  return {
    request: (path, result) => requests.inc({ path, result }),
    duration: (path, s) => durations.observe({ path }, s),
  };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function sendError(res: http.ServerResponse, status: number, message: string, headers?: Record<string, string>): void {
  sendJson(res, status, { error: message }, headers);
}

function isJson(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0].trim().toLowerCase() === 'application/json';
}

/**
 * Reads the body up to limit bytes; resolves undefined (after answering 413) when it is larger.
 * The excess is read and dropped rather than cutting the connection: a reset while the client is
 * still sending could destroy the 413 before it reads it. requestTimeout bounds how long that lasts.
 */
function readBody(req: http.IncomingMessage, res: http.ServerResponse, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): void => {
      sendError(res, 413, `body larger than ${limit} bytes`);
      req.resume();
      resolve(undefined);
    };
    if (Number(req.headers['content-length'] ?? 0) > limit) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size <= limit) return void chunks.push(c);
      req.off('data', onData);
      chunks.length = 0;
      tooLarge();
    };
    req.on('data', onData);
    req.on('end', () => {
      if (size <= limit) resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function errorMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}

interface ReviewContext {
  path: string;
  handler: AdmissionHandler;
  log: Logger;
  metrics: ServerMetrics;
  maxBodyBytes: number;
}

async function serveReview(req: http.IncomingMessage, res: http.ServerResponse, ctx: ReviewContext): Promise<void> {
  const started = process.hrtime.bigint();
  const body = await readBody(req, res, ctx.maxBodyBytes);
  if (!body) return ctx.metrics.request(ctx.path, 'too_large');
  const parsed = parseAdmissionReview(body);
  if (!parsed.ok) {
    ctx.metrics.request(ctx.path, 'bad_request');
    ctx.log.warn('rejected malformed AdmissionReview', { path: ctx.path, error: parsed.error });
    return sendError(res, 400, `invalid AdmissionReview: ${parsed.error}`);
  }
  const request = parsed.review.request;
  const fields = {
    path: ctx.path,
    uid: request.uid,
    kind: request.kind?.kind,
    operation: request.operation,
    namespace: request.namespace,
    name: request.name,
  };
  let response: AdmissionResponse;
  let result: string;
  try {
    response = await ctx.handler(parsed.review);
    result = response.allowed ? 'allowed' : 'denied';
  } catch (err) {
    response = { uid: request.uid, allowed: false, status: { code: 500, message: `agent-warden webhook failed: ${errorMessage(err)}` } };
    result = 'error';
    ctx.log.error('admission handler failed', { ...fields, error: errorMessage(err), durationMs: msSince(started) });
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  ctx.metrics.request(ctx.path, result);
  ctx.metrics.duration(ctx.path, seconds);
  if (result !== 'error') ctx.log.debug('admission review', { ...fields, allowed: response.allowed, durationMs: seconds * 1000 });
  sendJson(res, 200, wrapResponse(request.uid, response));
}

function msSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function pathOf(req: http.IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q >= 0 ? url.slice(0, q) : url;
}

export async function startWebhookServer(opts: WebhookServerOptions): Promise<WebhookServer> {
  const log = opts.log;
  const metrics = serverMetrics(opts.metrics);
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const secure = (): https.ServerOptions => ({ ...opts.tls(), minVersion: 'TLSv1.2' });
  let closing = false;

  const server = https.createServer({ ...secure(), keepAlive: true }, (req, res) => {
    if (closing) res.setHeader('connection', 'close');
    const path = pathOf(req);
    const handler = Object.prototype.hasOwnProperty.call(opts.handlers, path) ? opts.handlers[path] : undefined;
    if (!handler) {
      metrics.request(path === '/' ? '/' : 'unknown', 'not_found');
      return sendError(res, 404, `no admission webhook at ${path}`);
    }
    if (req.method !== 'POST') {
      metrics.request(path, 'bad_method');
      return sendError(res, 405, 'admission reviews are POSTed', { allow: 'POST' });
    }
    if (!isJson(req.headers['content-type'])) {
      metrics.request(path, 'bad_content_type');
      return sendError(res, 415, 'content-type must be application/json');
    }
    serveReview(req, res, { path, handler, log, metrics, maxBodyBytes }).catch((err: unknown) => {
      log.error('admission request failed', { path, error: errorMessage(err) });
      if (!res.headersSent) sendError(res, 500, 'internal error');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = KEEP_ALIVE_MS + 5_000;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.on('tlsClientError', (err) => log.debug('TLS handshake failed', { error: err.message }));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error('webhook server error', { error: err.message }));
  const port = (server.address() as { port: number }).port;
  log.info('admission webhook server listening', { port, paths: Object.keys(opts.handlers) });

  return {
    port,
    reloadTls: (): void => {
      // setSecureContext builds the new context before swapping: a bad key/cert throws and the old one stays.
      server.setSecureContext(secure());
      log.info('webhook serving certificate reloaded');
    },
    close: (): Promise<void> =>
      new Promise<void>((resolve) => {
        closing = true;
        // close() stops accepting and (Node >= 19) drops idle keep-alive connections; in-flight
        // reviews finish with `connection: close`. A client that never finishes is cut after a grace period.
        const force = setTimeout(() => server.closeAllConnections(), DRAIN_TIMEOUT_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
