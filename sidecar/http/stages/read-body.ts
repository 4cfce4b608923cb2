// Read and bound the request body. A declared length over the target's limit is refused (413)
// before anything is read. The body is read whole only when something judges it: a rule matches
// on body fields, request bodies are masked, or the audit record reads it (LLM model, payload
// recording); it is then parsed as JSON whatever its Content-Type says (a missing or wrong type
// must not let a body past a rule). Other bodies stream to the upstream untouched (the hot path),
// counted against the same limit (limitBytes).
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { HttpError } from '../errors';
import { readLimited } from '../read-limited';
import { parseJsonBody } from '../request-view';
import type { ParsedBody, RouteExchange } from './exchange';
import type { Stage } from './stage';

export const readBodyStage: Stage<RouteExchange> = {
  name: 'read-body',
  run(ex) {
    const { req } = ex;
    const maxBody = ex.plan!.maxBody;
    const cl = req.headers['content-length'];
    const declared = cl !== undefined ? Number(cl) : undefined;
    ex.hasBody = req.headers['transfer-encoding'] !== undefined || (declared !== undefined && declared > 0);
    if (declared !== undefined && declared > maxBody) {
      throw new HttpError(413, 'request_too_large', `request body of ${declared} bytes exceeds the limit of ${maxBody} bytes`);
    }
    if (!ex.hasBody || !(ex.plan!.needsBody || ex.llm || ex.recordPayloads)) return undefined;
    // Ask for the body first if the agent is waiting.
    ex.continueBody();
    return readAndParse(ex, maxBody);
  },
};

async function readAndParse(ex: RouteExchange, maxBody: number): Promise<void> {
  ex.body = parseBody(await readRequestBody(ex.req, maxBody, `body exceeds the limit of ${maxBody} bytes`), ex.req.headers['content-type']);
}

/**
 * The agent's request body read into memory; a 413 HttpError (request_too_large, saying message)
 * once it exceeds limit. The request is left paused, so the error can still be answered on its
 * connection. Shared with the forward proxy.
 */
export function readRequestBody(req: Readable, limit: number, message: string): Promise<Buffer> {
  return readLimited(req, limit, () => new HttpError(413, 'request_too_large', message), 'pause');
}

/**
 * A body JSON.parse accepts but that upstreams may read otherwise (a key repeated in one object,
 * a `__proto__` key) is refused (400): the upstream would act on values nobody judged.
 */
function parseBody(raw: Buffer, contentType: string | undefined): ParsedBody {
  const b = parseJsonBody(raw, contentType);
  if (b.kind !== 'refused') return b;
  throw new HttpError(400, b.type, b.message);
}

/** Passes bytes through until `limit`, then fails with a 413 HttpError. */
export function limitBytes(limit: number): Transform {
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      size += chunk.length;
      if (size > limit) cb(new HttpError(413, 'request_too_large', `request body exceeds the limit of ${limit} bytes`));
      else cb(null, chunk);
    },
  });
}
