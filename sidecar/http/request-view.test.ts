// normalizeRequestPath's shortcut for plain paths (PLAIN_PATH) must answer exactly what the full
// normalisation answers: checked here against a reference copy of it over every path of up to
// three parts built from the characters that matter (dots, slashes, escapes, `;`, controls).
import { normalizeRequestPath } from './request-view';

/** The full normalisation, as it reads every path (the reference). */
function reference(raw: string): { judged: string; forwarded: string } | 'refused' {
  const segments = raw.split('/').filter((s) => s !== '');
  const judged: string[] = [];
  for (const s of segments) {
    if (/%2f|%5c/i.test(s) || s.includes('\\')) return 'refused';
    const semi = s.indexOf(';');
    let d: string;
    try {
      d = decodeURIComponent(semi >= 0 ? s.slice(0, semi) : s);
    } catch {
      return 'refused';
    }
    if (/%[0-9a-f]{2}/i.test(d) || d === '.' || d === '..' || d.includes('/') || d.includes('\\') || /[\x00-\x1f\x7f]/.test(d))
      return 'refused';
    if (d !== '') judged.push(d);
  }
  const trailing = raw.endsWith('/') && segments.length > 0 ? '/' : '';
  return { judged: '/' + judged.join('/') + trailing, forwarded: '/' + segments.join('/') + trailing };
}

function actual(raw: string): { judged: string; forwarded: string } | 'refused' {
  try {
    return normalizeRequestPath(raw);
  } catch {
    return 'refused';
  }
}

test('the plain-path shortcut answers what the full normalisation answers', () => {
  const parts = [
    'a',
    'v1',
    '.',
    '..',
    '/',
    '//',
    '%2e',
    '%2F',
    ';',
    'x;y',
    '\\',
    '%00',
    '~',
    '-',
    '@',
    ':',
    '%41',
    '\u00e9',
    ' ',
    '\n',
    '.x',
  ];
  const paths = [''];
  for (const a of parts) for (const b of ['', ...parts]) for (const c of ['', ...parts]) paths.push(a + b + c, '/' + a + b + c);
  for (const p of paths) expect([p, actual(p)]).toEqual([p, reference(p)]);
  expect(normalizeRequestPath('/v1/chat/completions')).toEqual({ judged: '/v1/chat/completions', forwarded: '/v1/chat/completions' });
  expect(normalizeRequestPath('/v1/files/')).toEqual({ judged: '/v1/files/', forwarded: '/v1/files/' });
});
