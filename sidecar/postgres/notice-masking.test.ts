// Error, notice, notification and parameter-status masking on hand-built frames: which fields are
// redacted when the statement reads a protected column, what the detectors find otherwise, and
// that the re-encoded frame is well-formed with SQLSTATE and severity intact.
import { createTextMasker } from '../../common/masking/masker';
import { decodeNoticeFields } from './protocol/backend';
import { ProtocolError } from './protocol/errors';
import { cstr, int32, msg } from '../../test/support/sidecar/pg-bytes';
import { maskNoticeMessage, maskNotification, maskParameterValue } from './notice-masking';
import type { TargetMasking } from './row-masking';

const hashKey = Buffer.alloc(32);
const masking: TargetMasking = {
  columnRules: [],
  detectors: [{ rule: 'pii', masker: createTextMasker({ detectors: ['credit-card'], strategy: 'redact', hashKey }) }],
  protectedNames: new Set(),
  anyProtectedName: false,
  hashKey,
};
const CARD = '4111111111111111';

function errorFrame(fields: Array<[string, string]>): Buffer {
  return msg('E', ...fields.map(([t, v]) => Buffer.concat([Buffer.from(t), cstr(v)])), Buffer.from([0]));
}

function fieldsOf(frame: Buffer): Record<string, string> {
  return decodeNoticeFields({ code: frame[0], buf: frame, start: 0, body: 5, end: frame.length });
}

function mask(frame: Buffer, strict: boolean) {
  return maskNoticeMessage(frame[0], frame, 5, frame.length, masking, strict);
}

test('strict: a server message keeps its wording with quoted values redacted; detail, hint and internal query go whole', () => {
  const f = errorFrame([
    ['S', 'ERROR'],
    ['V', 'ERROR'],
    ['C', '23505'],
    ['M', 'duplicate key value violates unique constraint "k"'],
    ['D', 'Key (code)=(zq8842) already exists.'],
    ['H', 'zq8842'],
    ['q', 'SELECT zq8842'],
    ['n', 'k'],
    ['t', 'customers'],
    ['P', '8'],
  ]);
  const r = mask(f, true);
  const out = fieldsOf(r.frame!);
  expect(out).toMatchObject({
    S: 'ERROR',
    V: 'ERROR',
    C: '23505',
    M: 'duplicate key value violates unique constraint "[REDACTED]"',
    D: '[REDACTED]',
    H: '[REDACTED]',
    q: '[REDACTED]',
    n: 'k',
    t: 'customers',
    P: '8',
  });
  expect(r.frame!.toString()).not.toContain('zq8842');
});

test('strict: quoted names the statement itself contains stay, so the agent can fix its query', () => {
  const f = errorFrame([
    ['S', 'ERROR'],
    ['C', '42703'],
    ['M', 'column "nmae" does not exist'],
  ]);
  expect(mask(f, true).frame).toBeDefined();
  const r = maskNoticeMessage(f[0], f, 5, f.length, masking, true, 'SELECT NMAE FROM customers');
  expect(r.frame).toBeUndefined();
  const v = errorFrame([
    ['S', 'ERROR'],
    ['C', '42P01'],
    ['M', 'relation "zq8842" does not exist'],
  ]);
  expect(fieldsOf(maskNoticeMessage(v[0], v, 5, v.length, masking, true, 'SELECT secret::regclass FROM customers').frame!).M).toBe(
    'relation "[REDACTED]" does not exist',
  );
  // Outside class 42 a quoted part is data, even when the statement happens to contain it.
  const d = errorFrame([
    ['S', 'ERROR'],
    ['C', '22P02'],
    ['M', 'invalid input syntax for type integer: "1234"'],
  ]);
  expect(fieldsOf(maskNoticeMessage(d[0], d, 5, d.length, masking, true, "SELECT pin::int FROM t -- '1234'").frame!).M).toBe(
    'invalid input syntax for type integer: "[REDACTED]"',
  );
});

test('strict: a message raised from a function (it has a context) goes whole, names too', () => {
  const f = errorFrame([
    ['S', 'ERROR'],
    ['C', 'P0001'],
    ['M', 'boom zq8842'],
    ['W', 'PL/pgSQL function inline_code_block line 1 at RAISE'],
    ['n', 'zq8842'],
  ]);
  const out = fieldsOf(mask(f, true).frame!);
  expect(out).toMatchObject({ C: 'P0001', M: '[REDACTED]', W: '[REDACTED]', n: '[REDACTED]' });
});

test('not strict: only what the detectors find is masked, other messages pass as they are', () => {
  const f = errorFrame([
    ['S', 'ERROR'],
    ['C', '22003'],
    ['M', `value "${CARD}" is out of range for type integer`],
  ]);
  const r = mask(f, false);
  expect(r.count).toBe(1);
  expect(fieldsOf(r.frame!).M).toBe('value "[REDACTED]" is out of range for type integer');
  expect(
    mask(
      errorFrame([
        ['S', 'ERROR'],
        ['C', '22012'],
        ['M', 'division by zero'],
      ]),
      false,
    ).frame,
  ).toBeUndefined();
});

test('a notice frame keeps its type', () => {
  const f = msg('N', Buffer.from('S'), cstr('NOTICE'), Buffer.from('M'), cstr(`card ${CARD}`), Buffer.from([0]));
  const r = mask(f, false);
  expect(r.frame![0]).toBe('N'.charCodeAt(0));
  expect(fieldsOf(r.frame!).M).toBe('card [REDACTED]');
});

test('malformed error frames are protocol errors', () => {
  expect(() => mask(msg('E', Buffer.from('M'), Buffer.from('abc')), false)).toThrow(ProtocolError);
  expect(() => mask(msg('E', Buffer.from('M'), cstr('abc')), false)).toThrow(ProtocolError);
});

test('notifications: payload redacted whole when strict, detector-masked otherwise; process id kept', () => {
  const f = msg('A', int32(77), cstr('ch'), cstr(`card ${CARD}`));
  const loose = maskNotification(f, 5, f.length, masking, false);
  expect(loose.frame).toEqual(msg('A', int32(77), cstr('ch'), cstr('card [REDACTED]')));
  const strict = maskNotification(f, 5, f.length, masking, true);
  expect(strict.frame).toEqual(msg('A', int32(77), cstr('ch'), cstr('[REDACTED]')));
  const plain = msg('A', int32(77), cstr('ch'), cstr('hello'));
  expect(maskNotification(plain, 5, plain.length, masking, false).frame).toBeUndefined();
});

test('parameter values', () => {
  expect(maskParameterValue(`x ${CARD}`, masking, false).value).toBe('x [REDACTED]');
  expect(maskParameterValue('psql', masking, false)).toEqual({ value: 'psql', count: 0 });
  expect(maskParameterValue('psql', masking, true).value).toBe('[REDACTED]');
});
