// Test helper (not shipped behaviour): the fake API server does no authentication and runs no
// admission webhooks, so this small HTTP front end adds both, the way the real API server does:
// - each bearer token maps to a user (userInfo), like a token authenticator;
// - a write to approvalrequests (POST, PUT, PATCH, on the object or /status) is first run as a
//   dry run on the fake (so patch semantics, /status handling and conflicts are the fake's own),
//   then the mutating and the validating handler see an AdmissionReview with object/oldObject and
//   userInfo; a refusal answers with a Status "admission webhook ... denied the request: MESSAGE"
//   (the real wording), otherwise the mutated object is written with the old resourceVersion;
// - everything else (GET, list, watch, DELETE) is piped through unchanged.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { applyPatch, type Operation } from 'fast-json-patch';
import { KubeConfig } from '@kubernetes/client-node';
import type { FakeApiServer } from './fake-apiserver';
import type { AdmissionResponse, AdmissionReview, UserInfo } from '../../../operator/webhook/types';
import { admissionReview, requestType } from './admission-review';
import type { ApprovalAdmission } from '../../../operator/approvals/admission';
import { API_VERSION, APPROVAL_REQUEST, GROUP, VERSION } from '../../../common/k8s/names';

export const MUTATING_WEBHOOK = 'mutate.approvalrequests.agentwarden.io';
export const VALIDATING_WEBHOOK = 'validate.approvalrequests.agentwarden.io';

export interface AdmissionProxy {
  url: string;
  /** A KubeConfig that authenticates as `username` with `groups`. */
  kubeConfig(username: string, groups?: string[], namespace?: string): KubeConfig;
  /** Every AdmissionReview sent to a handler (mutating and validating). */
  reviews: AdmissionReview[];
  close(): Promise<void>;
}

type Obj = Record<string, unknown>;

const APPROVAL_REQUEST_TYPE = requestType(API_VERSION, APPROVAL_REQUEST.kind, APPROVAL_REQUEST.plural);

const PATH = new RegExp(
  `^/apis/${GROUP.replace(/\./g, '\\.')}/${VERSION}/namespaces/([^/]+)/${APPROVAL_REQUEST.plural}(?:/([^/]+))?(?:/(status))?/?$`,
);

function send(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function statusBody(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** One request to the fake; resolves with its status and parsed body. */
function forward(
  fakeUrl: string,
  method: string,
  path: string,
  headers: http.OutgoingHttpHeaders,
  body?: Buffer | string,
): Promise<{ code: number; body: Obj }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      `${fakeUrl}${path}`,
      { method, headers: { ...headers, 'content-length': body ? Buffer.byteLength(body) : 0 } },
      (res) => {
        readBody(res).then(
          (b) => resolve({ code: res.statusCode ?? 500, body: b.length ? (JSON.parse(b.toString('utf8')) as Obj) : {} }),
          reject,
        );
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

export async function startAdmissionProxy(fake: FakeApiServer, admission: ApprovalAdmission): Promise<AdmissionProxy> {
  const users = new Map<string, UserInfo>();
  const reviews: AdmissionReview[] = [];

  async function admit(handler: 'mutate' | 'validate', review: AdmissionReview): Promise<AdmissionResponse> {
    reviews.push(structuredClone(review));
    return admission[handler](review);
  }

  async function write(req: http.IncomingMessage, res: http.ServerResponse, user: UserInfo, m: RegExpExecArray, url: URL): Promise<void> {
    const body = await readBody(req);
    // Like the real API server, a PATCH is re-applied to the latest object when another write
    // landed while it was being admitted (a resourceVersion precondition in the patch still fails).
    for (let attempt = 0; ; attempt++) {
      const out = await admitAndWrite(req, user, m, url, body);
      if (out.code === 409 && req.method === 'PATCH' && out.retryable && attempt < 10) continue;
      return send(res, out.code, out.body);
    }
  }

  async function admitAndWrite(
    req: http.IncomingMessage,
    user: UserInfo,
    m: RegExpExecArray,
    url: URL,
    body: Buffer,
  ): Promise<{ code: number; body: Obj; retryable?: boolean }> {
    const [, namespace, name, sub] = m;
    const headers = { 'content-type': req.headers['content-type'] ?? 'application/json', accept: 'application/json' };
    const dry = new URL(url.toString());
    dry.searchParams.set('dryRun', 'All');
    const old = name ? fake.object(API_VERSION, APPROVAL_REQUEST.kind, namespace, name) : undefined;
    const candidate = await forward(fake.url, req.method!, dry.pathname + dry.search, headers, body);
    if (candidate.code >= 300) return candidate;
    let obj = candidate.body;
    const review = (): AdmissionReview =>
      admissionReview({
        uid: randomUUID(),
        ...APPROVAL_REQUEST_TYPE,
        ...(sub ? { subResource: sub } : {}),
        name: name ?? String((obj.metadata as Obj | undefined)?.name ?? ''),
        namespace,
        operation: req.method === 'POST' ? 'CREATE' : 'UPDATE',
        userInfo: user,
        object: obj,
        oldObject: old ?? null,
      });
    const mutated = await admit('mutate', review());
    if (!mutated.allowed) return deny(MUTATING_WEBHOOK, mutated);
    if (mutated.patch) {
      obj = applyPatch(
        structuredClone(obj),
        JSON.parse(Buffer.from(mutated.patch, 'base64').toString('utf8')) as Operation[],
        true,
        false,
      ).newDocument;
    }
    const validated = await admit('validate', review());
    if (!validated.allowed) return deny(VALIDATING_WEBHOOK, validated);
    if (req.method === 'POST') return forward(fake.url, 'POST', url.pathname, headers, JSON.stringify(obj));
    // Written as a replace with the resourceVersion the change was computed from: a write that
    // landed in between is a 409, as with the real API server's optimistic concurrency.
    (obj.metadata as Obj).resourceVersion = (old?.metadata as Obj | undefined)?.resourceVersion;
    const out = await forward(
      fake.url,
      'PUT',
      url.pathname,
      { 'content-type': 'application/json', accept: 'application/json' },
      JSON.stringify(obj),
    );
    return { ...out, retryable: true };
  }

  function deny(webhook: string, r: AdmissionResponse): { code: number; body: Obj } {
    const code = r.status?.code ?? 400;
    return {
      code,
      body: statusBody(
        code,
        r.status?.reason ?? 'BadRequest',
        `admission webhook "${webhook}" denied the request: ${r.status?.message ?? ''}`,
      ),
    };
  }

  function pipe(req: http.IncomingMessage, res: http.ServerResponse): void {
    const { host: _host, ...headers } = req.headers;
    const up = http.request(`${fake.url}${req.url}`, { method: req.method, headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
      res.on('close', () => upRes.destroy());
      // an upstream that drops a (watch) stream drops it for the client too
      upRes.on('close', () => {
        if (!res.writableEnded) res.destroy();
      });
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  }

  const server = http.createServer((req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const user = token === undefined ? undefined : users.get(token);
    if (!user) return send(res, 401, statusBody(401, 'Unauthorized', 'Unauthorized'));
    const url = new URL(req.url ?? '/', 'http://proxy');
    const m = PATH.exec(url.pathname);
    if (m && ['POST', 'PUT', 'PATCH'].includes(req.method ?? '')) {
      write(req, res, user, m, url).catch((e: Error) => send(res, 500, statusBody(500, 'InternalError', e.message)));
      return;
    }
    pipe(req, res);
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    reviews,
    kubeConfig(username, groups = [], namespace = 'default') {
      const token = `token-${randomUUID()}`;
      users.set(token, { username, groups: [...groups, 'system:authenticated'] });
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'proxy', server: url, skipTLSVerify: true }],
        users: [{ name: username, token }],
        contexts: [{ name: 'proxy', cluster: 'proxy', user: username, namespace }],
        currentContext: 'proxy',
      });
      return kc;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
