// Forward upstream: the request goes out over a pooled undici Agent per timeout (HTTP/2 where the
// server offers it over TLS, HTTP/1.1 otherwise) — the read body as sent (masked), or the agent's
// body streamed through, bounded by the target's limit. The agent going away aborts it; nothing
// waits past the target's timeout (headers and body). Upstream failures become 502/504 answers
// naming the target (asRouteError).
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { HttpError } from '../errors';
import type { RouteExchange } from './exchange';
import { limitBytes } from './read-body';
import type { Stage } from './stage';

/** The pooled upstream connections of one route handler, one Agent per timeout. */
export class UpstreamClients {
  private readonly agents = new Map<number, Agent>();

  /** override: a dispatcher used instead (tests); per-request timeouts still apply. */
  constructor(private readonly override?: Dispatcher) {}

  for(timeoutMs: number): Dispatcher {
    if (this.override) return this.override;
    let a = this.agents.get(timeoutMs);
    if (!a) {
      a = new Agent({
        keepAliveTimeout: 30_000,
        allowH2: true, // HTTP/2 upstream where the server offers it over TLS (ALPN); HTTP/1.1 otherwise
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        connect: { timeout: timeoutMs, rejectUnauthorized: true },
      });
      this.agents.set(timeoutMs, a);
    }
    return a;
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.close()));
    this.agents.clear();
  }
}

/**
 * What undici aborts the upstream request on when the agent goes away. undici takes an
 * EventEmitter as `signal` and uses only `aborted`, `reason`, `once('abort')` and
 * `removeListener('abort')` (after checking that `on` is a function): this holds its one
 * listener, far cheaper per request than an EventEmitter (or an AbortController and its
 * EventTarget signal).
 */
class AgentGone {
  aborted = false;
  readonly reason = undefined;
  private listener: (() => void) | undefined = undefined;

  on(event: string, listener: () => void): this {
    return this.once(event, listener);
  }

  once(event: string, listener: () => void): this {
    if (event === 'abort') this.listener = listener;
    return this;
  }

  removeListener(event: string, listener: () => void): this {
    if (event === 'abort' && this.listener === listener) this.listener = undefined;
    return this;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  }
}

export const forwardUpstreamStage: Stage<RouteExchange> = {
  name: 'forward-upstream',
  run: forwardUpstream,
};

async function forwardUpstream(ex: RouteExchange): Promise<void> {
  const { req, res } = ex;
  const headers = ex.upstreamHeaders;
  const { timeoutMs, maxBody } = ex.plan!;
  let upBody: Readable | Buffer | undefined;
  const buffered = ex.bufferedBody;
  if (buffered) {
    upBody = buffered;
    headers['content-length'] = String(buffered.length);
  } else if (ex.hasBody) {
    ex.continueBody();
    if (req.headers['transfer-encoding'] === undefined) {
      // A declared length (read-body.ts refused one over the limit): node's parser ends the body
      // at that length, so it cannot grow past the limit and goes out without a Transform.
      upBody = req;
    } else {
      const limited = limitBytes(maxBody);
      upBody = req.pipe(limited);
      req.on('error', (e) => limited.destroy(e));
    }
  }

  const gone = new AgentGone();
  const onClose = (): void => {
    if (res.writableFinished) return;
    gone.abort();
  };
  res.once('close', onClose);
  const url = ex.upstreamUrl!;
  const upstreamStart = performance.now();
  ex.upstreamStart = upstreamStart;
  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await ex.services.clients.for(timeoutMs).request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: ex.method,
      headers,
      body: upBody,
      headersTimeout: timeoutMs,
      bodyTimeout: ex.upstreamIdle ?? timeoutMs,
      signal: gone,
    });
  } catch (err) {
    res.off('close', onClose);
    // The limiting Transform is ours to drop; the agent's request stays, so the error can be answered on its connection.
    if (upBody && upBody !== req && typeof (upBody as Readable).destroy === 'function') (upBody as Readable).destroy();
    throw err;
  }
  // Removed, and the body released if unread, once the answer is sent (RouteExchange.releaseUpstream).
  ex.onAgentClose = onClose;
  ex.upstream = upstream;
  const upstreamDone = (): void => {
    ex.upstreamMs ??= performance.now() - upstreamStart;
  };
  upstream.body.once('end', upstreamDone);
  upstream.body.once('close', upstreamDone);
}

/** Any failure of a named-route request as the agent's answer: HttpErrors as they are, upstream failures as 502/504/499/400. */
export function asRouteError(err: unknown, target: string): HttpError {
  if (err instanceof HttpError) return err;
  const code = (err as { code?: string }).code ?? '';
  const name = (err as { name?: string }).name ?? '';
  const cause = (err as { cause?: { code?: string } }).cause?.code;
  if (/TIMEOUT/.test(code) || code === 'ETIMEDOUT') {
    return new HttpError(504, 'upstream_timeout', `upstream of route "${target}" did not answer in time (${code})`, { target });
  }
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED') {
    return new HttpError(499, 'client_closed', 'the agent closed the request');
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH')
    return new HttpError(400, 'bad_request', 'request body does not match its content-length');
  return new HttpError(502, 'upstream_unavailable', `upstream of route "${target}" is unavailable (${code || cause || name || 'error'})`, {
    target,
  });
}
