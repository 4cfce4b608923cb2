// Request masking: prompts and tool results leaving for the API — PII the agent read must not
// leave the cluster. A read body is masked by the target's request maskers: JSON (whatever the
// Content-Type says) through the document masker, text/* through the detectors; anything else
// (form, multipart, octet-stream, JSON nested too deep, declared JSON that does not parse,
// compressed) cannot be masked and is refused with 422, unless the target says `unparseable: allow`.
import { maskJsonDocument } from '../../../common/masking/stream/json';
import { JsonTooDeepError } from '../../../common/policy/jsonpath';
import { HttpError } from '../errors';
import { jsonMaskingIsNoop } from './body-scan';
import type { ParsedBody, RouteExchange } from './exchange';
import { isJson } from './media-types';
import type { MaskPlan } from './target-plan';
import type { Stage } from './stage';

export const maskRequestStage: Stage<RouteExchange> = {
  name: 'mask-request',
  run(ex) {
    const body = ex.body;
    ex.bufferedBody = body?.raw;
    const requestPlan = ex.plan!.requestPlan;
    if (!body || !requestPlan) return;
    const headers = ex.req.headers;
    const masked = maskRequestBody(
      body,
      String(headers['content-type'] ?? ''),
      String(headers['content-encoding'] ?? 'identity'),
      requestPlan,
      ex.plan!.allowUnparseable,
    );
    if (masked.error) ex.error = masked.error;
    ex.bufferedBody = masked.body;
    ex.masked += masked.count;
    if (masked.count > 0) delete ex.upstreamHeaders['content-md5'];
  },
};

type Masked = { body: Buffer; count: number; error?: string };

function maskRequestBody(parsed: ParsedBody, contentType: string, encoding: string, plan: MaskPlan, allowUnparseable: boolean): Masked {
  const body = parsed.raw;
  const refuse = (why: string): Masked => {
    if (allowUnparseable) return { body, count: 0, error: `request passed unmasked (unparseable: allow): ${why}` };
    throw new HttpError(422, 'unmaskable_request', `${why}; the policy masks request bodies, so it is not sent`);
  };
  if (encoding.toLowerCase().trim() !== 'identity') return refuse(`request body has content-encoding "${encoding}"`);
  if (parsed.kind === 'empty') return { body, count: 0 };
  let count = 0;
  if (parsed.kind === 'json') {
    // Nothing a masker looks for in the bytes: sent as they came, without a walk (body-scan.ts).
    if (jsonMaskingIsNoop(body, plan.maskers)) return { body, count: 0 };
    let doc: unknown = parsed.doc;
    for (const m of plan.maskers) {
      const r = maskJsonDocument(doc, { masker: m.masker, jsonPaths: m.jsonPaths });
      doc = r.doc;
      count += r.count;
    }
    return count > 0 ? { body: Buffer.from(JSON.stringify(doc), 'utf8'), count } : { body, count };
  }
  const type = contentType.toLowerCase().split(';')[0].trim();
  if (parsed.tooDeep) return refuse(`request body is ${new JsonTooDeepError().message}`);
  if (isJson(type)) return refuse('request body says it is JSON but does not parse');
  if (!type.startsWith('text/'))
    return refuse(`request body of content-type "${type || '(none)'}" is not JSON or text, so it cannot be masked`);
  let text = body.toString('utf8');
  for (const m of plan.maskers) {
    const r = m.masker.mask(text);
    text = r.text;
    count += r.count;
  }
  return count > 0 ? { body: Buffer.from(text, 'utf8'), count } : { body, count };
}
