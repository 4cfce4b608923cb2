// A response passed through: untouched, or (a route with a credential) decompressed and scrubbed
// of the credential as it streams. Still read, by a copy of each chunk that never delays the
// stream, for the payload recording and LLM token usage.
import type { ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createSseParser } from '../../../common/masking/stream/sse-parser';
import { PayloadCapture } from '../../audit/capture';
import type { CredentialScrubber } from '../routes/credential-scrub';
import { decodeStream } from './decompress';
import type { RouteExchange } from './exchange';
import { isJson } from './media-types';
import { unscrubbable } from './unmaskable';

export function respondPass(ex: RouteExchange, type: string, encoding: string, noBody: boolean): Promise<void> {
  const scrub = ex.scrub;
  if (!scrub || noBody) return passUntouched(ex, type, encoding);
  // Whatever the type: an echo of the request headers can be anywhere in it.
  const up = ex.upstream!;
  const headers = ex.responseHeaders;
  const decoded = decodeStream(up.body, encoding);
  if (!decoded) throw unscrubbable(ex, encoding);
  for (const h of ['content-length', 'content-encoding', 'content-md5', 'etag']) delete headers[h];
  const scrubbed = decoded.pipe(scrubTransform(scrub, ex));
  decoded.once('error', (e) => scrubbed.destroy(e));
  observePassThrough(ex, scrubbed, type, 'identity');
  ex.res.writeHead(up.statusCode, headers);
  return pipeToClient(scrubbed, ex.res);
}

/** The upstream body as it came. */
export function passUntouched(ex: RouteExchange, type: string, encoding: string): Promise<void> {
  const up = ex.upstream!;
  observePassThrough(ex, up.body, type, encoding);
  ex.res.writeHead(up.statusCode, ex.responseHeaders);
  return pipeToClient(up.body, ex.res);
}

/** Streams body to the agent; resolves when sent, or when the agent went away (body destroyed). */
async function pipeToClient(body: Readable, res: ServerResponse): Promise<void> {
  try {
    await pipeline(body, res);
  } catch (err) {
    if (res.destroyed && !res.writableFinished && !body.errored) return; // the agent closed
    throw err;
  }
}

/** Scrubs the credential from a byte stream, holding back only what could still become one. */
function scrubTransform(scrubber: CredentialScrubber, ex: RouteExchange): Transform {
  const scrub = scrubber.byteStream();
  let counted = 0;
  const count = (): void => {
    ex.countScrubbed(scrub.count - counted);
    counted = scrub.count;
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      const out = scrub.push(chunk.toString('latin1'));
      count();
      cb(null, out === '' ? undefined : Buffer.from(out, 'latin1'));
    },
    flush(cb: TransformCallback) {
      const out = scrub.end();
      count();
      cb(null, out === '' ? undefined : Buffer.from(out, 'latin1'));
    },
  });
}

/**
 * A response passed through untouched (no masking, no response rules) is still read for the
 * recording and for LLM usage (token counts): a copy of each chunk, never delaying the stream.
 */
function observePassThrough(ex: RouteExchange, body: Readable, type: string, encoding: string): void {
  const capture = ex.responseCapture;
  const tap = encoding === 'identity' ? ex.tap : undefined;
  if (!capture && !tap) return;
  const sse = type.startsWith('text/event-stream');
  const json = !sse && isJson(type);
  const parser = tap && sse ? createSseParser() : undefined;
  const jsonCopy = tap && json ? new PayloadCapture(4 * 1024 * 1024) : undefined;
  body.on('data', (chunk: Buffer) => {
    capture?.add(chunk);
    if (parser) for (const b of parser.push(chunk)) if (b.data !== null) tap!.sseEvent(b.event ?? undefined, b.data);
    jsonCopy?.add(chunk);
  });
  body.once('end', () => {
    if (!jsonCopy || jsonCopy.truncated) return;
    try {
      tap!.json(JSON.parse(jsonCopy.text()));
    } catch {
      /* not JSON after all: no usage to read */
    }
  });
}
