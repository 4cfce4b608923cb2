// Event streams (SSE) and NDJSON, streamed: each event is parsed once (sseItem); response rules
// check it against the upstream's unmasked JSON, then every masking rule's masker runs over the
// same parse (createSsePipeline), and the injected credential is scrubbed last, held back across
// events like a detector match. Only whole events that passed go on, so half of an event is never
// forwarded before it could be checked. Read in the charset the stream declares, sent as UTF-8.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import {
  createSseEventMasker,
  createSsePipeline,
  serializeItem,
  sseItem,
  type SseEventMasker,
  type SseItem,
} from '../../../common/masking/stream/sse';
import { createSseParser } from '../../../common/masking/stream/sse-parser';
import { createNdjsonReader, NdjsonLineTooLongError, serializeNdjsonItem } from '../../../common/masking/stream/ndjson';
import type { CompiledRule } from '../../../common/policy/compile';
import { JsonTooDeepError } from '../../../common/policy/jsonpath';
import type { Decision } from '../../../common/policy/types';
import { errorBody, HttpError, policyDeniedBody } from '../errors';
import { declaredCharset, decoderFor, isUtf8, transcodeToUtf8, withUtf8Charset } from '../routes/charset';
import { decodeStream } from './decompress';
import type { RouteExchange } from './exchange';
import { passUntouched } from './respond-pass';
import { checkEvent } from './response-rules';
import { unmaskable, unscrubbable } from './unmaskable';

/**
 * Most bytes an event stream may send without completing an event. A stream that is not SSE
 * (one long line, no blank lines) would otherwise be buffered without end; past this it is
 * refused (the stream ends with an `event: error`).
 */
export const MAX_SSE_EVENT_BYTES = 10 * 1024 * 1024;

/** NDJSON lines, each at most MAX_NDJSON_LINE_CHARS long (a longer one ends the stream with an error line). */
export const MAX_NDJSON_LINE_CHARS = 1024 * 1024;

export function respondEvents(ex: RouteExchange, kind: 'sse' | 'ndjson', type: string, encoding: string): Promise<void> {
  const up = ex.upstream!;
  const headers = ex.responseHeaders;
  const decoded = decodeStream(up.body, encoding);
  if (!decoded) {
    if (ex.scrub) throw unscrubbable(ex, encoding);
    const e = unmaskable(
      ex,
      `upstream of route "${ex.target}" sent an event stream with content-encoding "${encoding}", which cannot be inspected`,
    );
    if (e) throw e;
    return passUntouched(ex, type, encoding);
  }
  delete headers['content-length'];
  delete headers['content-encoding'];
  headers['cache-control'] = headers['cache-control'] ?? 'no-cache';
  headers['x-accel-buffering'] = 'no';
  // Read in the charset it declares (clients may honour it), sent as UTF-8.
  const charset = declaredCharset(String(up.headers['content-type'] ?? ''));
  let events: Readable = decoded;
  if (!isUtf8(charset)) {
    const decoder = decoderFor(charset!);
    if (!decoder)
      throw new HttpError(
        502,
        'unmaskable_response',
        `event stream of route "${ex.target}" declares charset "${charset}", which cannot be decoded, so it cannot be masked`,
      );
    events = decoded.pipe(transcodeToUtf8(decoder));
    decoded.once('error', (e) => events.destroy(e));
    headers['content-type'] = withUtf8Charset(String(up.headers['content-type']));
  }
  return streamEvents(ex, events, kind === 'ndjson' ? NDJSON_FRAMING : SSE_FRAMING);
}

/** How a stream is cut into events and written back: SSE events, or NDJSON lines. */
interface StreamFraming {
  name: string;
  /** Events as they complete, each parsed only when called (after a denial, later ones never are). */
  reader(): { push(chunk: Buffer): Array<() => SseItem>; end(): Array<() => SseItem> };
  serialize: (item: SseItem) => string;
  /** What the stream ends with when a response rule denies an event. */
  denial(d: Decision): string;
  /** What the stream ends with when it cannot be masked (an error body). */
  error(body: string): string;
}

class StreamEventTooLargeError extends Error {}

const SSE_FRAMING: StreamFraming = {
  name: 'event stream',
  reader() {
    const p = createSseParser();
    let pending = 0;
    return {
      push(c) {
        const blocks = p.push(c);
        pending = blocks.length > 0 ? 0 : pending + c.length;
        if (pending > MAX_SSE_EVENT_BYTES) throw new StreamEventTooLargeError(`an event longer than ${MAX_SSE_EVENT_BYTES} bytes`);
        return blocks.map((b) => () => sseItem(b));
      },
      end: () => p.end().map((b) => () => sseItem(b)),
    };
  },
  serialize: serializeItem,
  // The SSE form of the 403 body: what a streamed response ends with when a response rule denies it.
  denial: (d) => `event: error\ndata: ${policyDeniedBody(d, d.reason)}\n\n`,
  error: (body) => `event: error\ndata: ${body}\n\n`,
};

const NDJSON_FRAMING: StreamFraming = {
  name: 'NDJSON stream',
  reader() {
    const r = createNdjsonReader(MAX_NDJSON_LINE_CHARS);
    return { push: (c) => r.push(c).map((it) => () => it), end: () => r.end().map((it) => () => it) };
  },
  serialize: serializeNdjsonItem,
  denial: (d) => policyDeniedBody(d, d.reason) + '\n',
  error: (body) => body + '\n',
};

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

/** The masking rules' maskers, then the injected credential (held back across events like a detector match). */
function eventMaskers(ex: RouteExchange): SseEventMasker[] {
  const maskers = (ex.plan!.responsePlan?.maskers ?? []).map((m) => createSseEventMasker({ masker: m.masker, jsonPaths: m.jsonPaths }));
  if (ex.scrub) maskers.push(ex.scrub.eventMasker());
  return maskers;
}

/**
 * An event stream to the agent. On a denial the events before it are still sent (the maskers
 * release what they held, masked), then `event: error` + the policy_denied body; nothing from the
 * denied event on is. An event nested too deep to mask ends the stream with an `event: error`
 * (unmaskable_response): fail closed.
 */
async function streamEvents(ex: RouteExchange, decoded: Readable, framing: StreamFraming): Promise<void> {
  const { res } = ex;
  const maskedBefore = ex.masked;
  const rules: readonly CompiledRule[] | undefined = ex.responseRules.length > 0 ? ex.responseRules : undefined;
  const parser = framing.reader();
  const pipe = createSsePipeline(eventMaskers(ex), framing.serialize);
  /** The events before the first denied one, and the denial (later ones are not even checked). */
  const check = (items: ReadonlyArray<() => SseItem>): { passed: SseItem[]; denied?: Decision } => {
    const passed: SseItem[] = [];
    for (const read of items) {
      const item = read();
      const denied = rules ? checkEvent(item, rules) : undefined;
      if (denied) return { passed, denied };
      passed.push(item);
    }
    return { passed };
  };
  // The injected credential is scrubbed from the text as it goes out, across writes.
  const scrub = ex.scrub?.textStream();
  const finish = (text: string): Promise<void> => {
    const last = scrub ? scrub.push(text) + scrub.end() : text;
    return new Promise((resolve) => res.end(last, () => resolve()));
  };
  let agentGone = false;
  const onClose = (): void => {
    if (res.writableFinished) return;
    agentGone = true;
    decoded.destroy();
  };
  res.writeHead(ex.upstream!.statusCode, ex.responseHeaders);
  res.flushHeaders();
  res.once('close', onClose);
  try {
    for await (const chunk of decoded) {
      const { passed, denied } = check(parser.push(chunk as Buffer));
      if (ex.tap) for (const it of passed) if (it.data !== null) ex.tap.sseEvent(it.event ?? undefined, it.data);
      const out = pipe.push(passed);
      if (out !== '') ex.responseCapture?.add(out);
      if (denied) {
        ex.decision = denied;
        return await finish(out + pipe.end() + framing.denial(denied));
      }
      const sent = scrub ? scrub.push(out) : out;
      if (sent !== '' && !res.write(sent)) await drained(res);
      if (agentGone) return;
    }
    if (agentGone) return;
    const { passed, denied } = check(parser.end());
    const out = pipe.push(passed.filter((b) => b.block?.complete));
    if (denied) {
      ex.decision = denied;
      return await finish(out + pipe.end() + framing.denial(denied));
    }
    await finish(out + pipe.end(passed.filter((b) => !b.block?.complete)));
  } catch (err) {
    if (agentGone) return;
    if (err instanceof JsonTooDeepError || err instanceof NdjsonLineTooLongError || err instanceof StreamEventTooLargeError) {
      ex.error = `${framing.name} refused: ${err.message}`;
      return await finish(
        framing.error(errorBody('unmaskable_response', `an event of route "${ex.target}" is ${err.message}, so it cannot be masked`)),
      );
    }
    throw err;
  } finally {
    res.off('close', onClose);
    ex.masked = maskedBefore + pipe.masked();
    if (scrub) ex.countScrubbed(scrub.count);
  }
}
