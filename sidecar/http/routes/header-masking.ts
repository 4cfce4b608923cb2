// Response headers carry data too: `Content-Disposition: attachment; filename="jane@corp.io.csv"`,
// `Location: /customers/4111111111111111`, custom `X-*` headers with a record's fields. On a route
// whose responses are masked, every header value goes through the same detectors as the body,
// except the framing and caching headers below, whose values are protocol, not data (and whose
// rewriting could break the response: a masked Content-Length or ETag). Percent-encoded runs
// (URLs, RFC 5987 `filename*`) are masked decoded too.
import type { TextMasker } from '../../../common/masking/masker';

/** Response headers whose values are never masked. Lower case. */
export const FRAMING_HEADERS: ReadonlySet<string> = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-range',
  'accept-ranges',
  'transfer-encoding',
  'date',
  'expires',
  'last-modified',
  'age',
  'etag',
  'cache-control',
  'pragma',
  'vary',
  'retry-after',
  'strict-transport-security',
  'traceparent',
  'tracestate',
]);

/**
 * A run of URL characters holding a percent-escape: a query value, a path segment, an RFC 5987
 * `filename*` (the delimiters around such values end it; `+` stays literal, as in addresses).
 */
const ENCODED_RUN = /[^\s;,&=?/'"<>]*%[0-9A-Fa-f]{2}[^\s;,&=?/'"<>]*/g;

/** Masks header values in place with each masker; returns the number of values masked. */
export function maskResponseHeaders(headers: Record<string, string | string[]>, maskers: ReadonlyArray<{ masker: TextMasker }>): number {
  let count = 0;
  const maskText = (v: string): string => {
    let text = v;
    for (const { masker } of maskers) {
      const r = masker.mask(text);
      text = r.text;
      count += r.count;
    }
    return text;
  };
  // Headers carry URLs and RFC 5987 values, percent-encoded (`Location: /x?email=a%40b.io`,
  // `filename*=UTF-8''a%40b.io.csv`): each encoded run is decoded, masked, and re-encoded.
  const mask = (v: string): string =>
    maskText(v).replace(ENCODED_RUN, (run) => {
      const decoded = percentDecodeLenient(run);
      const masked = maskText(decoded);
      return masked === decoded ? run : encodeURIComponent(masked);
    });
  for (const name of Object.keys(headers)) {
    if (FRAMING_HEADERS.has(name)) continue;
    const v = headers[name];
    headers[name] = Array.isArray(v) ? v.map(mask) : mask(v);
  }
  return count;
}

/**
 * A percent-encoded run decoded as UTF-8, leniently: an escape that is not UTF-8 (`%FF`), or a
 * stray `%`, does not stop the detectors reading the rest of the run (it becomes U+FFFD, or stays
 * as written). decodeURIComponent throws on those, and the whole run went past unread.
 */
function percentDecodeLenient(run: string): string {
  try {
    return decodeURIComponent(run);
  } catch {
    const parts: Buffer[] = [];
    let last = 0;
    for (const m of run.matchAll(/%([0-9A-Fa-f]{2})/g)) {
      parts.push(Buffer.from(run.slice(last, m.index), 'utf8'), Buffer.from([parseInt(m[1], 16)]));
      last = m.index + 3;
    }
    parts.push(Buffer.from(run.slice(last), 'utf8'));
    return Buffer.concat(parts).toString('utf8');
  }
}
