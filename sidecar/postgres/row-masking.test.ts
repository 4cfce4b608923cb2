// DataRow decoding in the masker: a malformed row is a protocol error, never a crash or a misread.
import { ProtocolError } from './protocol/errors';
import { int16, int32, msg } from '../../test/support/sidecar/pg-bytes';
import { ActionKind, maskDataRow, type TargetMasking } from './row-masking';

const masking: TargetMasking = {
  columnRules: [],
  detectors: [],
  protectedNames: new Set(),
  anyProtectedName: false,
  hashKey: Buffer.alloc(32),
};
const plan = { active: true, actions: [{ kind: ActionKind.Whole, strategy: 'redact' as const, nullify: true, skip: 0 }] };
const frame = (b: Buffer) => ({ code: 0x44, buf: b, start: 0, body: 5, end: b.length });

test.each([
  ['a negative length other than -1', msg('D', int16(1), int32(-2))],
  ['a value running past the message', msg('D', int16(1), int32(10), Buffer.from('abc'))],
  ['a column count larger than the columns sent', msg('D', int16(2), int32(1), Buffer.from('a'))],
  ['no column count', msg('D')],
])('%s is a ProtocolError', (_name, b) => {
  expect(() => maskDataRow(frame(b), plan, masking)).toThrow(ProtocolError);
});

test('a well-formed row is masked', () => {
  const r = maskDataRow(frame(msg('D', int16(1), int32(3), Buffer.from('100'))), plan, masking);
  expect(r.count).toBe(1);
  expect(r.frame).toEqual(msg('D', int16(1), int32(-1)));
});
