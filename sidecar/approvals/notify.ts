// Approval notifications: a generic signed JSON webhook and the Slack incoming-webhook format.
//
// Delivery is fire-and-forget: `notify` snapshots the request, starts the delivery in the
// background and returns at once; it never throws and never blocks (or fails) the hold. Each
// delivery is retried on network errors, timeouts, 5xx and 429 (honouring Retry-After), with
// jittered exponential backoff; other 4xx (and 3xx: redirects are not followed) are final.
// Failures are logged as a warning naming the target by its host only: webhook URLs — Slack's
// above all — carry secrets in their path and query, so a full URL is never logged.
//
// Generic webhook (`kind: 'webhook'`): `POST` with `content-type: application/json` and body
//   { "type": "approval.created" | "approval.decided" | "approval.expired" | "approval.cancelled",
//     "approval": <ApprovalRequest, operation.display truncated to 4 KiB>,
//     "sentAt": <RFC 3339> }
//   Every string is display-safe: control, bidi and invisible characters are shown as \x1b,
//   \u202e, … (common/display-escape.ts), so a receiver that renders them shows no other text.
// Headers:
//   x-warden-event       the type above
//   x-warden-delivery    unique id of this delivery, identical on every retry (dedupe on it)
//   x-warden-timestamp   Unix seconds when this attempt was sent
//   x-warden-signature   sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>, only when
//                        the target has a secret
//
// Verifying a delivery (receiver side):
//   1. Read the raw request body as bytes/string, before any JSON parsing or re-serialisation.
//   2. expected = "sha256=" + hex(HMAC_SHA256(secret, x-warden-timestamp + "." + rawBody)).
//   3. Compare with x-warden-signature in constant time (e.g. crypto.timingSafeEqual).
//   4. Reject timestamps far from your clock (e.g. more than 5 minutes) to refuse replays, and
//      drop x-warden-delivery ids already processed (retries repeat the id, with a new timestamp
//      and signature).
//   Node: crypto.createHmac('sha256', secret).update(`${ts}.${rawBody}`).digest('hex')
import { createHmac, randomUUID } from 'node:crypto';
import { silentLogger, type Logger } from '../../common/log';
import type { ApprovalRequest } from './types';
import { displaySafeDeep, displaySafeJson } from '../../common/display-escape';

export type NotifyEvent = 'created' | 'decided' | 'expired' | 'cancelled';

export type NotifyTarget = { kind: 'webhook'; url: string; secret?: string } | { kind: 'slack'; url: string };

export interface NotifierOptions {
  fetch?: typeof fetch;
  log?: Logger;
  /** Retries after the first attempt. Default 4 (five attempts in all). */
  retries?: number;
  /** Base of the exponential backoff (base·2^n, jittered to 50–100 %). Default 500 ms. */
  backoffMs?: number;
  /** Per-attempt timeout, response headers included. Default 5000 ms. */
  timeoutMs?: number;
  /** Longest Retry-After honoured; longer values are clamped. Default 60 s. */
  maxRetryAfterMs?: number;
  /** Deliveries in flight beyond which new ones are dropped with a warning. Default 1000. */
  maxInFlight?: number;
}

export interface Notifier {
  /** Starts delivery to every target in the background. Never throws, never blocks the caller. */
  notify(req: ApprovalRequest, event: NotifyEvent): void;
  /** Resolves when every delivery in flight (retries included) has finished. */
  idle(): Promise<void>;
}

/** Largest operation.display sent to a receiver, in UTF-8 bytes (marker included). */
export const MAX_DISPLAY_BYTES = 4096;
/** Slack rejects a section whose text exceeds 3000 characters. */
const SLACK_SECTION_MAX = 3000;

/** Truncates to at most `maxBytes` UTF-8 bytes, on a character boundary, with a marker. */
export function truncateUtf8(s: string, maxBytes: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= maxBytes) return s;
  const marker = `\n… (truncated, ${buf.length} bytes in all)`;
  let end = Math.max(0, maxBytes - Buffer.byteLength(marker, 'utf8'));
  // Step back over UTF-8 continuation bytes so no character is cut in half.
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8') + marker;
}

function truncateChars(s: string, max: number): string {
  if (s.length <= max) return s;
  const marker = `\n… (truncated, ${s.length} characters in all)`;
  let end = max - marker.length;
  // Do not split a surrogate pair.
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return s.slice(0, end) + marker;
}

/**
 * The request as sent to receivers: a deep copy with every string display-safe (receivers render
 * it in chat, mail or a browser, where control and bidi characters would hide or reorder text)
 * and the operation display bounded.
 */
function snapshot(req: ApprovalRequest): ApprovalRequest {
  const copy = displaySafeDeep(req);
  copy.operation = { ...copy.operation, display: truncateUtf8(copy.operation.display, MAX_DISPLAY_BYTES) };
  return copy;
}

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function webhookPayload(req: ApprovalRequest, event: NotifyEvent, sentAt = new Date()): string {
  return displaySafeJson({ type: `approval.${event}`, approval: snapshot(req), sentAt: sentAt.toISOString() });
}

/** Slack mrkdwn control characters. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Inline code span: backticks inside would end it early. */
function code(s: string): string {
  return '`' + esc(s.replace(/`/g, 'ˋ')) + '`';
}

function relative(ms: number): string {
  if (ms <= 0) return 'now';
  const s = Math.round(ms / 1000);
  if (s < 120) return `in ${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `in ${m}m`;
  return `in ${Math.round(m / 60)}h`;
}

function requesterText(req: ApprovalRequest): string {
  const g = req.requester.groups.length ? ` (${req.requester.groups.join(', ')})` : '';
  return req.requester.subject + g;
}

export function slackPayload(req: ApprovalRequest, event: NotifyEvent, now = Date.now()): { text: string; blocks: unknown[] } {
  const r = snapshot(req);
  const headline: Record<NotifyEvent, string> = {
    created: 'Approval needed',
    decided: r.state === 'pending' ? 'Approval vote recorded (more approvals needed)' : `Approval ${r.state}`,
    expired: 'Approval expired',
    cancelled: 'Approval cancelled',
  };
  const title = `${headline[event]}: ${r.operation.kind.toUpperCase()} on ${r.target} (rule ${r.rule}, requested by ${r.requester.subject})`;
  const expires = Date.parse(r.expiresAt);
  const expiry = Number.isFinite(expires) ? `${r.expiresAt} (${relative(expires - now)})` : r.expiresAt;
  const fields = [
    `*Rule:*\n${code(r.rule)}`,
    `*Policy:*\n${code(r.policy)}`,
    `*Target:*\n${code(r.target)}`,
    `*Requester:*\n${esc(requesterText(r))}`,
    `*Expires:*\n${esc(expiry)}`,
    `*Approvals required:*\n${r.required}`,
  ].map((text) => ({ type: 'mrkdwn', text: truncateChars(text, 2000) }));

  // A ``` inside the operation would close the code block: break it with a zero-width space.
  const opBody = esc(r.operation.display.replace(/```/g, '``\u200b`'));
  const opText =
    truncateChars(
      `*Operation* (${r.operation.kind}, digest ${r.operation.digest.slice(0, 12)}…):\n\`\`\`${opBody}`,
      SLACK_SECTION_MAX - 3,
    ) + '```';

  const blocks: unknown[] = [
    {
      type: 'section',
      text: { type: 'mrkdwn', text: truncateChars(`*${esc(headline[event])}* — approval ${code(r.id)}`, SLACK_SECTION_MAX) },
    },
    { type: 'section', fields },
    { type: 'section', text: { type: 'mrkdwn', text: opText } },
  ];
  if (event === 'created') {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `Approve: ${code(`warden approve ${r.id}`)}\nDeny: ${code(`warden deny ${r.id} --reason "..."`)}` },
    });
  } else {
    const lines = r.decisions.map(
      (d) => `• ${esc(d.by)} ${d.verdict === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${esc(d.reason)}` : ''}`,
    );
    if (r.finalReason) lines.push(esc(r.finalReason));
    if (lines.length) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: truncateChars(lines.join('\n'), SLACK_SECTION_MAX) } });
  }
  return { text: truncateChars(title, SLACK_SECTION_MAX), blocks };
}

/** Host (with port) only: the path and query of a webhook URL are secrets. */
function safeHost(url: URL): string {
  return url.host;
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unparseable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

/** Error description without anything that could carry the URL: the error name and code. */
function describeError(e: unknown): string {
  const err = e as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return 'timeout';
  return String(err?.cause?.code ?? err?.code ?? err?.cause?.name ?? err?.name ?? 'error');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Prepared {
  target: NotifyTarget;
  url: URL;
}

export function createNotifier(targets: NotifyTarget[], opts: NotifierOptions = {}): Notifier {
  const doFetch = opts.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  const log = opts.log ?? silentLogger;
  const retries = Math.max(0, opts.retries ?? 4);
  const backoffMs = Math.max(0, opts.backoffMs ?? 500);
  const timeoutMs = Math.max(1, opts.timeoutMs ?? 5000);
  const maxRetryAfterMs = opts.maxRetryAfterMs ?? 60_000;
  const maxInFlight = opts.maxInFlight ?? 1000;

  // Validate up front so a bad configuration fails at start-up; messages never echo the URL.
  const prepared: Prepared[] = targets.map((target, i) => {
    let url: URL;
    try {
      url = new URL(target.url);
    } catch {
      throw new Error(`notification target ${i} (${target.kind}): invalid URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new Error(`notification target ${i} (${target.kind}, host ${safeHost(url)}): URL must be http or https`);
    }
    return { target, url };
  });

  const inFlight = new Set<Promise<void>>();

  async function deliver(p: Prepared, event: NotifyEvent, req: ApprovalRequest, delivery: string): Promise<void> {
    const type = `approval.${event}`;
    const host = safeHost(p.url);
    const fields = { target: p.target.kind, host, event: type, approval: req.id, delivery };
    // The body is built once: the payload (sentAt included) is identical on every retry.
    const body = p.target.kind === 'slack' ? displaySafeJson(slackPayload(req, event)) : webhookPayload(req, event);
    let last = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      let retryAfter: number | undefined;
      const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'agent-warden' };
      if (p.target.kind === 'webhook') {
        const ts = String(Math.floor(Date.now() / 1000));
        headers['x-warden-event'] = type;
        headers['x-warden-delivery'] = delivery;
        headers['x-warden-timestamp'] = ts;
        if (p.target.secret) headers['x-warden-signature'] = webhookSignature(p.target.secret, ts, body);
      }
      try {
        const res = await doFetch(p.url.href, {
          method: 'POST',
          headers,
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) {
          log.debug('approval notification delivered', { ...fields, status: res.status, attempts: attempt + 1 });
          return;
        }
        last = `HTTP ${res.status}`;
        if (!(res.status >= 500 || res.status === 429)) {
          log.warn('approval notification rejected; not retried', { ...fields, status: res.status, attempts: attempt + 1 });
          return;
        }
        retryAfter = parseRetryAfter(res.headers.get('retry-after'));
      } catch (e) {
        last = describeError(e);
      }
      if (attempt === retries) break;
      const delay =
        retryAfter !== undefined ? Math.min(retryAfter, maxRetryAfterMs) : backoffMs * 2 ** attempt * (0.5 + Math.random() * 0.5);
      log.debug('approval notification failed; retrying', { ...fields, error: last, attempt: attempt + 1, retryInMs: Math.round(delay) });
      await sleep(delay);
    }
    log.warn('approval notification failed', { ...fields, error: last, attempts: retries + 1 });
  }

  function notify(req: ApprovalRequest, event: NotifyEvent): void {
    try {
      if (prepared.length === 0) return;
      if (typeof req !== 'object' || req === null || typeof req.id !== 'string' || typeof req.operation?.display !== 'string') {
        log.warn('approval notification not sent: malformed request', { event });
        return;
      }
      const snap = structuredClone(req);
      for (const p of prepared) {
        if (inFlight.size >= maxInFlight) {
          log.warn('approval notification dropped: too many in flight', {
            target: p.target.kind,
            host: safeHost(p.url),
            approval: snap.id,
            inFlight: inFlight.size,
          });
          continue;
        }
        const delivery = randomUUID();
        // Start on a later tick: nothing of the delivery (payload, signing, fetch) runs on the caller's stack.
        const task: Promise<void> = sleep(0)
          .then(() => deliver(p, event, snap, delivery))
          .catch((e) =>
            log.warn('approval notification failed', {
              target: p.target.kind,
              host: safeHost(p.url),
              approval: snap.id,
              delivery,
              error: describeError(e),
            }),
          )
          .catch(() => undefined) // a throwing logger must not become an unhandled rejection
          .finally(() => inFlight.delete(task));
        inFlight.add(task);
      }
    } catch (e) {
      try {
        log.warn('approval notification not sent', { error: describeError(e) });
      } catch {
        // never throw into the hold
      }
    }
  }

  async function idle(): Promise<void> {
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
  }

  return { notify, idle };
}
