// The approvals API on the sidecar's admin port. The agent shares the pod's loopback, so a
// loopback connection proves nothing about who is calling: decisions need an approver identity
// from a verified bearer token, or (standalone development and the demo only) --local-approvals,
// where loopback callers decide as the local OS user. Reads are open: they show what the agent
// itself asked to run, never credentials.
import type * as http from 'node:http';
import * as os from 'node:os';
import type { Identity } from '../../common/policy/types';
import type { ApprovalState, Verdict } from '../../common/approvals/object';
import { ApprovalError, type ApprovalBackend } from './types';
import type { AdminHandler } from '../../common/admin-server';
import { parseBearer } from '../../common/identity/extract';
import { displaySafeJson } from '../../common/display-escape';

export const LOCAL_APPROVERS_GROUP = 'local-approvers';
const MAX_BODY = 64 * 1024;
const STATES: readonly string[] = ['pending', 'approved', 'denied', 'expired', 'cancelled'];

export interface ApprovalsApiOptions {
  backend: ApprovalBackend;
  /** --local-approvals: loopback callers decide as the local OS user, group `local-approvers`. */
  localApprovals?: boolean;
  /** Verifies an approver's bearer token (the policy's issuer/JWKS); throws with a reason when it fails. */
  verifyToken?: (token: string) => Promise<Identity>;
  /** false in Kubernetes: decisions come only through ApprovalRequest objects. Default true. */
  acceptDecisions?: boolean;
  /** Test seam: the local OS user name (default os.userInfo().username). */
  localUser?: string;
  /** Called after each accepted decision (audit log). */
  onDecision?(id: string, by: Identity, verdict: Verdict): void;
}

export type { AdminHandler };

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  // Lossless: hidden characters become JSON \u escapes, so `curl` prints nothing a terminal acts on.
  const text = displaySafeJson(body, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}

function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, 'body_too_large', `request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'invalid_json', 'request body is not valid JSON; send {"reason": "..."}');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new HttpError(400, 'invalid_json', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

export function createApprovalsHandler(opts: ApprovalsApiOptions): AdminHandler {
  const { backend } = opts;

  async function approver(req: http.IncomingMessage): Promise<Identity> {
    if (opts.acceptDecisions === false) {
      throw new HttpError(
        403,
        'decisions_disabled',
        'this sidecar accepts no decisions on its admin API; decide through the ApprovalRequest object (kubectl warden approve|deny)',
      );
    }
    const auth = req.headers.authorization;
    const token = typeof auth === 'string' ? parseBearer(auth) : undefined;
    if (auth !== undefined && token === undefined) throw new HttpError(401, 'invalid_token', 'Authorization must be "Bearer TOKEN"');
    if (token !== undefined && opts.verifyToken) {
      try {
        const id = await opts.verifyToken(token);
        return { subject: id.subject, groups: [...id.groups], source: 'token' };
      } catch (e) {
        throw new HttpError(401, 'invalid_token', `approver token rejected: ${(e as Error).message}`);
      }
    }
    if (opts.localApprovals) {
      if (!isLoopback(req.socket.remoteAddress)) {
        throw new HttpError(403, 'approver_identity_required', 'local approvals are accepted from loopback only');
      }
      return { subject: opts.localUser ?? os.userInfo().username, groups: [LOCAL_APPROVERS_GROUP], source: 'local' };
    }
    if (token !== undefined) {
      throw new HttpError(
        403,
        'approver_identity_required',
        'this sidecar cannot verify approver tokens (the policy has no spec.identity issuer), so it accepts no decisions',
      );
    }
    throw new HttpError(
      403,
      'approver_identity_required',
      "deciding needs an approver's verified token (Authorization: Bearer, or warden --token / WARDEN_TOKEN): the agent shares this pod's loopback, so a loopback connection proves nothing. Only a standalone development sidecar started with --local-approvals lets loopback callers decide as the local OS user",
    );
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, parts: string[], query: URLSearchParams): Promise<void> {
    const method = req.method ?? 'GET';
    if (parts.length === 1) {
      if (method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'use GET /approvals');
      const state = query.get('state') ?? 'pending';
      if (state !== 'all' && !STATES.includes(state)) {
        throw new HttpError(400, 'invalid_request', `state must be one of all, ${STATES.join(', ')}`);
      }
      const items = await backend.list(state === 'all' ? {} : { state: state as ApprovalState });
      return sendJson(res, 200, { items });
    }
    let id: string;
    try {
      id = decodeURIComponent(parts[1]);
    } catch {
      throw new HttpError(400, 'invalid_request', 'malformed approval id in the path');
    }
    if (parts.length === 2) {
      if (method !== 'GET') throw new HttpError(405, 'method_not_allowed', `use GET /approvals/${id}`);
      const rec = await backend.get(id);
      if (!rec) throw new ApprovalError('not_found', `no approval request "${id}"`);
      return sendJson(res, 200, rec);
    }
    if (parts.length === 3 && (parts[2] === 'approve' || parts[2] === 'deny')) {
      if (method !== 'POST') throw new HttpError(405, 'method_not_allowed', `use POST /approvals/${id}/${parts[2]}`);
      const verdict: Verdict = parts[2];
      const body = await readJson(req);
      const reason = body.reason === undefined ? '' : body.reason;
      if (typeof reason !== 'string') throw new HttpError(400, 'invalid_request', 'reason must be a string');
      if (verdict === 'deny' && reason.trim() === '')
        throw new HttpError(400, 'reason_required', 'a denial needs a reason; the agent is told it');
      const digest = body.digest;
      if (digest !== undefined && typeof digest !== 'string') throw new HttpError(400, 'invalid_request', 'digest must be a string');
      const who = await approver(req);
      const rec = await backend.decide(id, who, verdict, reason.trim(), digest);
      opts.onDecision?.(id, who, verdict);
      return sendJson(res, 200, rec);
    }
    throw new HttpError(404, 'not_found', `no such endpoint ${req.url}`);
  }

  return (req, res, url) => {
    const parts = url.pathname.split('/').filter((p) => p !== '');
    if (parts[0] !== 'approvals') return false;
    handle(req, res, parts, url.searchParams).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (e instanceof ApprovalError) return sendError(res, e.status, e.code, e.message);
      if (e instanceof HttpError) return sendError(res, e.status, e.code, e.message);
      sendError(res, 500, 'internal', `approvals API failed: ${(e as Error).message}`);
    });
    return true;
  };
}
