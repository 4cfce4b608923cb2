// JSON and text responses: buffered (bounded by the masked-response limit, also once
// decompressed), decoded in the charset they declare (a byte-order mark wins) and sent as UTF-8.
// A JSON document is checked against the response rules BEFORE any byte is sent (a match discards
// it and answers 403 policy_denied), then masked (jsonPaths and detectors, object keys included);
// one with a repeated key is re-serialised from the parse that was checked and masked. text/* is
// masked as text (HTML and XML also with character references decoded, html-entities.ts). The
// injected credential is scrubbed last; the answer goes out with a fresh length.
import { maskJsonDocument } from '../../../common/masking/stream/json';
import { findDuplicateKey } from '../../../common/masking/stream/json-duplicates';
import { jsonTooDeep, JsonTooDeepError } from '../../../common/policy/jsonpath';
import { denial, HttpError } from '../errors';
import { bomCharset, declaredCharset, decoderFor, isUtf8, withUtf8Charset } from '../routes/charset';
import { maskEntityRuns, readsCharacterReferences } from '../routes/html-entities';
import { jsonMaskingIsNoop } from './body-scan';
import { decodeBuffer, readUpstreamBody } from './decompress';
import type { RouteExchange } from './exchange';
import { checkDocument } from './response-rules';
import { unmaskable, unscrubbable } from './unmaskable';

export async function respondBuffered(ex: RouteExchange, json: boolean, type: string, encoding: string): Promise<void> {
  const up = ex.upstream!;
  const maxMasked = ex.plan!.maxMasked;
  const headers = ex.responseHeaders;
  const raw = await readUpstreamBody(
    up.body,
    maxMasked,
    `response from route "${ex.target}" exceeds the ${maxMasked}-byte limit for masked responses`,
  );
  let plain: Buffer | undefined;
  try {
    plain = decodeBuffer(raw, encoding, maxMasked);
  } catch {
    // Over the limit once decompressed (a decompression bomb): refused like an over-size body,
    // whatever `unparseable` says: it is not unparseable, it is too large.
    throw new HttpError(
      502,
      'unmaskable_response',
      `response from route "${ex.target}" exceeds the ${maxMasked}-byte limit for masked responses once decompressed`,
    );
  }
  if (!plain) {
    if (ex.scrub) throw unscrubbable(ex, encoding);
    const e = unmaskable(ex, `response from route "${ex.target}" has content-encoding "${encoding}", which cannot be inspected`);
    if (e) throw e;
    ex.responseCapture?.add(`(${raw.length} bytes, content-encoding ${encoding})`);
    return send(ex, raw);
  }
  const decoded = decodeText(ex, plain);
  if (decoded === undefined) {
    const sent = ex.scrubBytes(plain);
    delete headers['content-encoding'];
    headers['content-length'] = String(sent.length);
    return send(ex, sent);
  }
  const masked =
    json && decoded.text.trim() !== ''
      ? maskJson(ex, decoded.text, decoded.rewritten ? undefined : plain)
      : maskText(ex, decoded.text, type);
  if (masked === undefined) {
    // JSON that does not parse, passed as it came (`unparseable: allow`).
    delete headers['content-encoding'];
    const sent = ex.scrubBytes(plain);
    headers['content-length'] = String(sent.length);
    ex.responseCapture?.add(sent);
    return send(ex, sent);
  }
  ex.masked += masked.count;
  const out = ex.scrubBytes(masked.count > 0 || decoded.rewritten || masked.rewritten ? Buffer.from(masked.text, 'utf8') : plain);
  delete headers['content-encoding'];
  delete headers['content-md5'];
  if (ex.masked > ex.maskedInRequest) delete headers['etag'];
  headers['content-length'] = String(out.length);
  ex.responseCapture?.add(out);
  return send(ex, out);
}

/**
 * The body as text, decoded as declared (a byte-order mark wins); rewritten when it was not UTF-8
 * (it is sent as UTF-8). Undefined when it cannot be decoded and the target passes it unmasked.
 */
function decodeText(ex: RouteExchange, plain: Buffer): { text: string; rewritten: boolean } | undefined {
  const contentType = ex.upstream!.headers['content-type'];
  const charset = bomCharset(plain) ?? declaredCharset(String(contentType ?? ''));
  if (isUtf8(charset)) return { text: plain.toString('utf8'), rewritten: false };
  const decoder = decoderFor(charset!);
  let decodedText: string | undefined;
  try {
    decodedText = decoder?.decode(plain);
  } catch {
    /* bytes invalid in that charset */
  }
  if (decodedText === undefined) {
    const e = unmaskable(
      ex,
      `response from route "${ex.target}" declares charset "${charset}" but cannot be decoded in it, so it cannot be masked`,
    );
    if (e) throw e;
    return undefined;
  }
  ex.responseHeaders['content-type'] = withUtf8Charset(String(contentType ?? 'text/plain'));
  return { text: decodedText, rewritten: true };
}

interface MaskedText {
  text: string;
  count: number;
  /** Re-serialised (masked, or a repeated key): the text is sent, not the bytes as they came. */
  rewritten: boolean;
}

/**
 * A JSON document: checked against the response rules, then masked; undefined when it does not
 * parse and the target passes it unmasked. utf8: the bytes of text when they are UTF-8 as received
 * (then a byte scan can rule out every masker before the walk, body-scan.ts).
 */
function maskJson(ex: RouteExchange, text: string, utf8: Buffer | undefined): MaskedText | undefined {
  const plan = ex.plan!.responsePlan;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    const e = unmaskable(
      ex,
      `response from route "${ex.target}" says it is JSON but does not parse, so it cannot be ${plan ? 'masked' : 'checked against response rules'}`,
    );
    if (e) throw e;
    return undefined;
  }
  ex.tap?.json(doc);
  const tooDeep = jsonTooDeep(doc);
  if (ex.responseRules.length > 0) {
    // Decided on what the upstream said, before masking and before any byte is sent: a
    // denial discards the upstream's answer and the agent gets the 403 instead. Too deep to
    // check counts as unparseable: the deny rules match (fail closed).
    const denied = checkDocument(ex.responseRules, doc, tooDeep);
    if (denied) {
      ex.decision = denied;
      throw denial(denied);
    }
  }
  if (plan && tooDeep) {
    const e = unmaskable(ex, `response from route "${ex.target}" is ${new JsonTooDeepError().message}, so it cannot be masked`);
    if (e) throw e;
  }
  let changed = false;
  let count = 0;
  // Nothing a masker looks for in the bytes: no walk (the parse above still judged the document).
  const maskers = tooDeep || !plan || (utf8 !== undefined && jsonMaskingIsNoop(utf8, plan.maskers)) ? [] : plan.maskers;
  for (const m of maskers) {
    const r = maskJsonDocument(doc, { masker: m.masker, jsonPaths: m.jsonPaths });
    if (r.doc !== doc) changed = true;
    doc = r.doc;
    count += r.count;
    ex.countMasked(['json'], r.count);
  }
  // A repeated key: what was checked and masked is the parse (last value wins), so that is what
  // is sent. Looked for only when the parse is not being sent anyway (a second pass over the text).
  if (!changed && findDuplicateKey(text) !== undefined) {
    if (tooDeep) {
      throw new HttpError(
        502,
        'unmaskable_response',
        `response from route "${ex.target}" repeats a JSON key and is ${new JsonTooDeepError().message}, so it cannot be re-serialised`,
      );
    }
    changed = true;
  }
  return changed ? { text: JSON.stringify(doc), count, rewritten: true } : { text, count, rewritten: false };
}

/** text/* (and an empty JSON body) through the detectors; HTML and XML also with character references decoded. */
function maskText(ex: RouteExchange, input: string, type: string): MaskedText {
  const references = readsCharacterReferences(type);
  let text = input;
  let count = 0;
  for (const m of ex.plan!.responsePlan?.maskers ?? []) {
    const r = m.masker.mask(text);
    text = r.text;
    count += r.count;
    ex.countMasked(r.detectors, r.count);
    if (!references) continue;
    // `&#97;lice&#64;x.io` is an address to whoever reads the HTML.
    const e = maskEntityRuns(text, m.masker);
    text = e.text;
    count += e.count;
    ex.countMasked(e.detectors, e.count);
  }
  return { text, count, rewritten: false };
}

/** Writes the whole answer; resolves once it is handed to the socket. */
function send(ex: RouteExchange, body: Buffer): Promise<void> {
  ex.res.writeHead(ex.upstream!.statusCode, ex.responseHeaders);
  return new Promise<void>((resolve) => ex.res.end(body, () => resolve()));
}
