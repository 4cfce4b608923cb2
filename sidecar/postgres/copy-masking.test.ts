// COPY row masking by column: the row is split as the server wrote it (text escapes, CSV quoting,
// custom delimiter/quote/escape/NULL), only the masked fields change, and they are re-encoded.
import { copyPlan, maskCopyRow } from './copy-masking';
import { ActionKind, type RowPlan, type TargetMasking } from './row-masking';

const masking: TargetMasking = {
  columnRules: [],
  detectors: [],
  protectedNames: new Set(),
  anyProtectedName: false,
  hashKey: Buffer.alloc(32),
};
const NONE = { kind: ActionKind.None, skip: 0 };
const WHOLE = { kind: ActionKind.Whole, strategy: 'last4' as const, skip: 0 };
const NULLIFY = { kind: ActionKind.Whole, strategy: 'redact' as const, nullify: true, skip: 0 };
const plan = (...actions: RowPlan['actions']): RowPlan => ({ active: true, actions });

function mask(row: string, info: Parameters<typeof copyPlan>[0], p: RowPlan): string | undefined {
  return maskCopyRow(Buffer.from(row, 'utf8'), copyPlan(info, p), masking)?.data.toString('utf8');
}

test('text format: escapes are decoded before masking and the delimiter inside a value does not split it', () => {
  const info = { select: '', format: 'text' as const };
  expect(mask('a\\tb\t4111\\\\1111\tz\n', info, plan(NONE, WHOLE, NONE))).toBe('a\\tb\t****\\\\1111\tz\n'); // last4 keeps separators: the backslash, escaped again
  expect(mask('1\t\\N\tz\n', info, plan(NONE, WHOLE, NONE))).toBeUndefined(); // NULL stays NULL
  expect(mask('1\t100\tz\n', info, plan(NONE, NULLIFY, NONE))).toBe('1\t\\N\tz\n');
});

test('CSV: quoted fields with delimiters, doubled quotes and line breaks; NULL is the unquoted marker', () => {
  const info = { select: '', format: 'csv' as const };
  expect(mask('"a,b","41""11\n1111",x\n', info, plan(NONE, WHOLE, NONE))).toBe('"a,b","**""**\n1111",x\n');
  expect(mask('1,,x\n', info, plan(NONE, WHOLE, NONE))).toBeUndefined();
  expect(mask('1,"",x\n', info, plan(NONE, WHOLE, NONE))).toBe('1,"",x\n');
  expect(mask('1,5,x\n', info, plan(NONE, NULLIFY, NONE))).toBe('1,,x\n');
});

test('CSV with a custom delimiter, quote, escape and NULL marker', () => {
  const info = { select: '', format: 'csv' as const, delimiter: ';', quote: "'", escape: '\\', null: 'nil' };
  expect(mask("1;'a;\\'b';nil\n", info, plan(NONE, WHOLE, NULLIFY))).toBe("1;'*;\\'*';nil\n");
  expect(mask('1;x;7\n', info, plan(NONE, NONE, NULLIFY))).toBe('1;x;nil\n');
});

test('the CSV header line passes untouched', () => {
  const p = copyPlan({ select: '', format: 'csv', header: true }, plan(WHOLE));
  expect(maskCopyRow(Buffer.from('card_number\n'), p, masking)).toBeUndefined();
  expect(maskCopyRow(Buffer.from('4111111111111111\n'), p, masking)?.data.toString()).toBe('"************1111"\n');
});

test('a row with another column count than planned becomes all NULL markers (fail closed)', () => {
  const info = { select: '', format: 'text' as const };
  expect(mask('a\tb\tc\n', info, plan(NONE, WHOLE))).toBe('\\N\t\\N\n');
});
