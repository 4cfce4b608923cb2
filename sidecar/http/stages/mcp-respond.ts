// The MCP server's answer to the agent (decision 7 of issue 13). The upstream answers with
//   - nothing (202 Accepted for notifications and client responses, DELETE's 200/204): passed;
//   - application/json: one message or an array, read whole (bounded by the target's limit);
//   - text/event-stream: each event's data one message, reassembled across TCP chunks (an event
//     longer than MAX_SSE_EVENT_BYTES is refused), relayed event by event as it completes.
// Every server→client message goes through the hook chain (mcp-hooks.ts: list filtering, pins,
// masking) and is re-serialised from that parse, then the injected credential is scrubbed from
// the text. What cannot be parsed or passed is refused, never passed unmasked: a JSON answer with
// 502 naming the target, a stream by a JSON-RPC error for each request still unanswered in it and
// an `event: error`, then its end.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { createSseParser, type SseBlock } from '../../../common/masking/stream/sse-parser';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../../common/policy/jsonpath';
import { MCP_RESPONSE_REFUSED, MCP_SIDECAR_ERROR, rpcError } from '../../mcp/denials';
import { MessageRefusedError, runHooks, serverMessageKind, type ServerMessageHook } from '../../mcp/hooks';
import { idKey, type JsonRpcId } from '../../mcp/messages';
import { errorBody, HttpError } from '../errors';
import { decodeBuffer, decodeStream, readUpstreamBody } from './decompress';
import type { RouteExchange } from './exchange';
import { asRouteError } from './forward-upstream';
import { serverMessageHooks } from './mcp-hooks';
import { isJson } from './media-types';
import { MAX_SSE_EVENT_BYTES } from './respond-events';
import type { Stage } from './stage';

export const mcpRespondStage: Stage<RouteExchange> = {
  name: 'mcp-respond',
  run(ex) {
    const up = ex.upstream!;
    const type = String(up.headers['content-type'] ?? '').toLowerCase();
    const encoding = String(up.headers['content-encoding'] ?? 'identity')
      .toLowerCase()
      .trim();
    const noBody = up.statusCode === 204 || up.statusCode === 304 || up.statusCode < 200 || up.headers['content-length'] === '0';
    // A client that follows a redirect would talk to the server without the sidecar.
    if (up.statusCode >= 300 && up.statusCode < 400 && up.statusCode !== 304) {
      throw refusal(ex, `it is a redirect (status ${up.statusCode}), which is not followed`);
    }
    if (noBody) return respondEmpty(ex);
    if (type.startsWith('text/event-stream')) return respondEvents(ex, encoding);
    if (isJson(type)) return respondJson(ex, encoding);
    return respondOther(ex, type);
  },
};

/** Why a response of the route is refused, for the agent. */
function refusal(ex: RouteExchange, why: string): HttpError {
  ex.error = `MCP response refused: ${why}`;
  return new HttpError(502, 'unmaskable_response', `the answer of MCP server "${ex.target}" was refused: ${why}`, { target: ex.target });
}

function respondEmpty(ex: RouteExchange): Promise<void> {
  const stream = ex.mcp!.stream;
  if (stream) throw refusal(ex, `it sent no answer to the call (status ${ex.upstream!.statusCode})`);
  const headers = ex.responseHeaders;
  delete headers['content-encoding'];
  ex.res.writeHead(ex.upstream!.statusCode, headers);
  return endResponse(ex.res, '');
}

/** Another type: passed only when it carries nothing (an empty 202 without a Content-Type). */
async function respondOther(ex: RouteExchange, type: string): Promise<void> {
  const limit = ex.plan!.maxMasked;
  const body = await readUpstreamBody(
    ex.upstream!.body,
    limit,
    `the answer of MCP server "${ex.target}" exceeds the limit of ${limit} bytes`,
  );
  if (body.length > 0) {
    const status = ex.upstream!.statusCode;
    const why = `it has content-type "${type || '(none)'}" (status ${status}), which is not JSON-RPC`;
    // An error status is kept (clients act on 404 and 405), its body, which nothing could mask, is not.
    if (status >= 400) {
      ex.error = `MCP response refused: ${why}`;
      throw new HttpError(status, 'upstream_error', `the answer of MCP server "${ex.target}" was withheld: ${why}`, { target: ex.target });
    }
    throw refusal(ex, why);
  }
  return respondEmpty(ex);
}

/** The messages of one server answer, through the hooks; the text to send. Throws MessageRefusedError. */
function passMessage(ex: RouteExchange, hooks: readonly ServerMessageHook[], value: unknown): Record<string, unknown> | null {
  const kind = serverMessageKind(value);
  if (!kind) throw new MessageRefusedError('a message is not JSON-RPC');
  const v = value as Record<string, unknown>;
  const id = v.id as JsonRpcId | null | undefined;
  const method =
    kind === 'response'
      ? typeof id === 'string' || typeof id === 'number'
        ? ex.mcp!.requestMethods.get(idKey(id))
        : undefined
      : (v.method as string);
  return runHooks(hooks, { value: v, kind, id, method });
}

function parseServerJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MessageRefusedError('a message is not valid JSON');
  }
  if (jsonTooDeep(value)) throw new MessageRefusedError(`a message is nested deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

async function respondJson(ex: RouteExchange, encoding: string): Promise<void> {
  const up = ex.upstream!;
  const limit = ex.plan!.maxMasked;
  const raw = await readUpstreamBody(up.body, limit, `the answer of MCP server "${ex.target}" exceeds the limit of ${limit} bytes`);
  let decoded: Buffer | undefined;
  try {
    decoded = decodeBuffer(raw, encoding, limit);
  } catch {
    throw refusal(ex, `it exceeds the limit of ${limit} bytes once decompressed`);
  }
  if (!decoded) throw refusal(ex, `it has content-encoding "${encoding}", which cannot be read`);
  const hooks = serverMessageHooks(ex);
  let text: string;
  try {
    const doc = parseServerJson(decoded.toString('utf8'));
    if (Array.isArray(doc)) {
      const out: Record<string, unknown>[] = [];
      for (const m of doc) {
        const r = passMessage(ex, hooks, m);
        if (r) out.push(r);
      }
      text = JSON.stringify(out);
    } else {
      const r = passMessage(ex, hooks, doc);
      // A dropped single message leaves nothing to answer with: refused rather than an empty body the client cannot read.
      if (!r) throw new MessageRefusedError('the only message was withheld');
      text = JSON.stringify(r);
    }
    for (const h of hooks) h.end?.();
  } catch (err) {
    if (err instanceof MessageRefusedError) throw refusal(ex, err.message);
    throw err;
  }
  if (ex.scrub) {
    const s = ex.scrub.text(text);
    ex.countScrubbed(s.count);
    text = s.text;
  }
  ex.responseCapture?.add(text);
  // A held call's event stream is open (mcp-hold.ts): the JSON answer goes there, one event per message.
  const stream = ex.mcp!.stream;
  if (stream) return stream.end(asMessages(JSON.parse(text)));
  const headers = ex.responseHeaders;
  delete headers['content-encoding'];
  delete headers['etag'];
  delete headers['content-md5'];
  headers['content-type'] = 'application/json';
  headers['content-length'] = String(Buffer.byteLength(text));
  ex.res.writeHead(up.statusCode, headers);
  return endResponse(ex.res, text);
}

/** The messages of a JSON answer (one, or an array of them), for an event stream. */
function asMessages(doc: unknown): unknown[] {
  return Array.isArray(doc) ? doc : [doc];
}

function endResponse(res: ServerResponse, text: string): Promise<void> {
  return new Promise((resolve) => res.end(text, () => resolve()));
}

/** Resolves once res can take more, or is gone. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

class EventTooLargeError extends MessageRefusedError {}

/**
 * How a stream ends when an answer is refused (it cannot be read or masked) or failed (the
 * upstream timed out or went away): the requests still unanswered get an error rather than waiting
 * for an answer that will not come, then an `event: error`.
 */
function streamFailure(ex: RouteExchange, err: unknown, unanswered: Iterable<JsonRpcId>): string {
  const refused = err instanceof MessageRefusedError;
  const failure = refused ? undefined : asRouteError(err, ex.target);
  const why = failure?.message ?? `the answer of MCP server "${ex.target}" was refused: ${(err as Error).message}`;
  ex.error = failure ? why : `MCP response refused: ${(err as Error).message}`;
  const code = refused ? MCP_RESPONSE_REFUSED : MCP_SIDECAR_ERROR;
  let text = '';
  for (const id of unanswered) text += `event: message\ndata: ${JSON.stringify(rpcError(id, code, why))}\n\n`;
  return text + `event: error\ndata: ${errorBody(failure?.type ?? 'unmaskable_response', why, { target: ex.target })}\n\n`;
}

/**
 * An event as the agent gets it: its `id` (masked like any value the server sends), `retry` (a
 * delay of at most six digits, else dropped) and `event: message` fields, then the data (the
 * message as the hooks passed it). Comments and other fields are not messages the hooks could
 * mask: a comment is kept only as an empty one (a keep-alive), other fields are dropped. An event
 * of another type is dropped whole by the caller (clients ignore it anyway).
 */
function serializeEventFields(b: SseBlock, data: string | null, maskValue: (v: string) => string): string {
  let out = '';
  let comment = false;
  for (const l of b.lines) {
    if (l.name === 'id') out += `id: ${maskValue(l.value)}\n`;
    else if (l.name === 'event') out += 'event: message\n';
    else if (l.name === 'retry' && /^\d{1,6}$/.test(l.value)) out += `retry: ${l.value}\n`;
    else if (l.name === '' && !comment) comment = true;
  }
  if (data !== null)
    out +=
      data === ''
        ? 'data: \n'
        : data
            .split('\n')
            .map((d) => `data: ${d}\n`)
            .join('');
  else if (comment) out = ':\n' + out;
  return out === '' ? '' : out + '\n';
}

/** Masks a field value with the target's response maskers, counting what they mask. */
function fieldMasker(ex: RouteExchange): (v: string) => string {
  const maskers = ex.plan!.responsePlan?.maskers ?? [];
  return (v) => {
    let text = v;
    for (const m of maskers) {
      const r = m.masker.mask(text);
      if (r.count === 0) continue;
      text = r.text;
      ex.masked += r.count;
      ex.countMasked(r.detectors, r.count);
    }
    return text;
  };
}

async function respondEvents(ex: RouteExchange, encoding: string): Promise<void> {
  const up = ex.upstream!;
  const decoded: Readable | undefined = decodeStream(up.body, encoding);
  if (!decoded) throw refusal(ex, `it has content-encoding "${encoding}", which cannot be read`);
  const { res } = ex;
  const headers = ex.responseHeaders;
  for (const h of ['content-length', 'content-encoding', 'etag', 'content-md5']) delete headers[h];
  headers['cache-control'] = headers['cache-control'] ?? 'no-cache';
  headers['x-accel-buffering'] = 'no';
  const hooks = serverMessageHooks(ex);
  const parser = createSseParser();
  const scrub = ex.scrub?.textStream();
  /** Requests of this POST not answered yet in the stream: each gets an error if the stream is refused. */
  const pending = new Map<string, JsonRpcId>();
  for (const v of ex.mcp!.verdicts) if (v.message.kind === 'request') pending.set(idKey(v.message.id), v.message.id);
  let unterminated = 0;
  /** Events of the current chunk that passed the hooks, not sent yet. */
  let passed = '';

  const maskValue = fieldMasker(ex);
  const eventText = (b: SseBlock): string => {
    if (b.event !== null && b.event !== 'message') return ''; // not an MCP message: clients ignore it, so it is not passed
    if (b.data === null || b.data === '') return serializeEventFields(b, b.data, maskValue); // keep-alives, priming events (id, retry)
    const r = passMessage(ex, hooks, parseServerJson(b.data));
    const id = r?.id;
    if ((typeof id === 'string' || typeof id === 'number') && serverMessageKind(r) === 'response') pending.delete(idKey(id));
    return r ? serializeEventFields(b, JSON.stringify(r), maskValue) : '';
  };
  const send = async (text: string): Promise<void> => {
    const out = scrub ? scrub.push(text) : text;
    if (out === '') return;
    ex.responseCapture?.add(out);
    if (!res.write(out)) await drained(res);
  };
  const finish = (text: string): Promise<void> => endResponse(res, scrub ? scrub.push(text) + scrub.end() : text);

  let agentGone = false;
  const onClose = (): void => {
    if (res.writableFinished) return;
    agentGone = true;
    decoded.destroy();
  };
  if (!ex.mcp!.stream) {
    res.writeHead(up.statusCode, headers);
    res.flushHeaders();
  }
  res.once('close', onClose);
  try {
    for await (const chunk of decoded) {
      const blocks = parser.push(chunk as Buffer);
      unterminated = blocks.length > 0 ? 0 : unterminated + (chunk as Buffer).length;
      if (unterminated > MAX_SSE_EVENT_BYTES) throw new EventTooLargeError(`an event is longer than ${MAX_SSE_EVENT_BYTES} bytes`);
      for (const b of blocks) passed += eventText(b);
      await send(passed);
      passed = '';
      if (agentGone) return;
    }
    if (agentGone) return;
    // An unterminated last event is discarded by clients: not sent.
    for (const b of parser.end()) if (b.complete) passed += eventText(b);
    for (const h of hooks) h.end?.();
    await finish(passed);
  } catch (err) {
    if (agentGone) return;
    await finish(passed + streamFailure(ex, err, pending.values()));
  } finally {
    res.off('close', onClose);
    if (scrub) ex.countScrubbed(scrub.count);
  }
}
