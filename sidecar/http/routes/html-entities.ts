// Text in HTML reaches its reader decoded: `&#97;lice&#64;example&#46;com` (WordPress's
// antispambot() and other address obfuscators write e-mail addresses so) is alice@example.com to
// a browser, the agent's HTML parser or a model. So in HTML and XML responses, each run of text
// holding a character reference is also masked decoded, and the masked text written back escaped.
//
//   maskEntityRuns('<a>&#97;lice&#64;x.io</a>', masker)  // { text: '<a>[REDACTED]</a>', count: 1 }
import type { TextMasker } from '../../../common/masking/masker';

/** A run of text (no whitespace, tags or quotes) holding at least one character reference. */
const ENTITY_RUN = /[^\s<>"']*&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});[^\s<>"']*/g;
const REFERENCE = /&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z][a-zA-Z0-9]{1,31}));/g;

/** The named references that can spell parts of the data the detectors look for. */
const NAMED: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  commat: '@',
  period: '.',
  hyphen: '-',
  dash: '-',
  minus: '-',
  plus: '+',
  lpar: '(',
  rpar: ')',
  sol: '/',
  lowbar: '_',
};

function decodeReferences(run: string): string {
  return run.replace(REFERENCE, (ref, dec: string | undefined, hex: string | undefined, name: string | undefined) => {
    if (name !== undefined) return NAMED[name] ?? ref;
    const cp = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
    return cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? String.fromCodePoint(cp) : ref;
  });
}

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** text with every run that holds a character reference masked decoded (and re-escaped where it changed). */
export function maskEntityRuns(text: string, masker: TextMasker): { text: string; count: number; detectors: string[] } {
  let count = 0;
  const detectors: string[] = [];
  const out = text.replace(ENTITY_RUN, (run) => {
    const decoded = decodeReferences(run);
    if (decoded === run) return run;
    const r = masker.mask(decoded);
    if (r.count === 0) return run;
    count += r.count;
    detectors.push(...r.detectors);
    return escapeHtml(r.text);
  });
  return { text: count > 0 ? out : text, count, detectors };
}

/** HTML and XML bodies, whose readers decode character references. */
export function readsCharacterReferences(contentType: string): boolean {
  const t = contentType.toLowerCase().split(';')[0].trim();
  return t === 'text/html' || t === 'text/xml';
}
