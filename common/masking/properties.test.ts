// Property tests: masking leaves nothing a detector would flag, never touches text that cannot
// match, and the byte path agrees with the string path.
import fc from 'fast-check';
import type { MaskStrategy } from '../policy/types';
import { DETECTOR_NAMES, compileDetectors, mightMatch, mightMatchUtf8, scanMatches } from './detectors';
import { createTextMasker } from './masker';

const hashKey = Buffer.from('property-test-key-0123456789');
// FC_RUNS=200000 npx jest common/masking/properties  for a deeper search
const RUNS = Number(process.env.FC_RUNS ?? 3000);
const compiled = compileDetectors(DETECTOR_NAMES);
const strategies: MaskStrategy[] = ['redact', 'last4', 'hash'];
const maskers = strategies.map((strategy) => createTextMasker({ detectors: DETECTOR_NAMES, strategy, hashKey }));

// Sensitive values and near misses, spliced into random text so the properties exercise the
// detectors and the places where a mask meets its neighbours.
const samples = [
  '4111111111111111',
  '4111 1111 1111 1111',
  '5555-5555-5555-4444',
  '378282246310005',
  'alice@example.com',
  'Bob.Smith+x@mail.example.co.uk',
  '123-45-6789',
  '078 05 1120',
  '+14155552671',
  '+44 20 7946 0958',
  '(415) 555-2671',
  '415.555.2671',
  '1-800-555-0199',
  'DE89370400440532013000',
  'GB82 WEST 1234 5698 7654 32',
  'sk-proj-Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345',
  'AKIAIOSFODNN7EXAMPLE',
  'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
  'xoxb-1234567890-abcdefghij',
  'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
  'AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y',
  '-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----',
  'password=hunter2',
  '"api_key": "abc123"',
  'postgres://u:pw@db.example.com/x',
  '2024-01-15T10:30:00Z',
  '550e8400-e29b-41d4-a716-446655440000',
  '$1,234.56',
  'v1.2.3',
  '@',
  '+',
  '-',
  ':',
  '=',
  '.',
  ' ',
  '1',
  '42',
  'hash:',
  '****',
  '[REDACTED]',
  'é',
  '日本',
  '😀',
];
const piece = fc.oneof(fc.constantFrom(...samples), fc.string({ maxLength: 8 }), fc.string({ unit: 'grapheme', maxLength: 4 }));
const text = fc.array(piece, { maxLength: 12 }).map((parts) => parts.join(''));

describe('masking properties', () => {
  it('masked output contains no detector match (idempotent-safe)', () => {
    fc.assert(
      fc.property(text, fc.integer({ min: 0, max: strategies.length - 1 }), (t, si) => {
        const out = maskers[si].mask(t).text;
        expect(scanMatches(out, compiled)).toEqual([]);
        expect(maskers[si].mask(out).count).toBe(0);
      }),
      { numRuns: RUNS },
    );
  });

  it('text without digits, "@" or secret leads is returned unchanged (same object)', () => {
    // lower-case letters other than the secret leads s r g x e, plus space, punctuation and non-ASCII
    const safe = fc
      .array(fc.constantFrom(...'abcdfhijklmnopqtuvwyz ,.!?;()\'"/éü日本😀'.split('')), { maxLength: 40 })
      .map((cs) => cs.join(''));
    fc.assert(
      fc.property(safe, fc.integer({ min: 0, max: strategies.length - 1 }), (t, si) => {
        const r = maskers[si].mask(t);
        expect(r.text).toBe(t);
        expect(r.count).toBe(0);
        expect(maskers[si].maskUtf8(Buffer.from(t))).toBeNull();
      }),
    );
  });

  it('with no secret-key detector, text without digits or "@" is returned unchanged', () => {
    const m = createTextMasker({ detectors: ['credit-card', 'email', 'us-ssn', 'phone', 'iban'], strategy: 'redact', hashKey });
    const noDigitOrAt = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((t) => !/[0-9@]/.test(t));
    fc.assert(
      fc.property(noDigitOrAt, (t) => {
        expect(m.mask(t).text).toBe(t);
        expect(m.maskUtf8(Buffer.from(t))).toBeNull();
      }),
    );
  });

  it('the pre-check never hides a match, and agrees between string and bytes', () => {
    fc.assert(
      fc.property(text, (t) => {
        const may = mightMatch(t, compiled);
        if (scanMatches(t, compiled).length > 0) expect(may).toBe(true);
        if (t.isWellFormed()) expect(mightMatchUtf8(Buffer.from(t, 'utf8'), compiled)).toBe(may);
      }),
      { numRuns: RUNS },
    );
  });

  it('maskUtf8 agrees with mask on well-formed text', () => {
    fc.assert(
      fc.property(
        text.filter((t) => t.isWellFormed()),
        fc.integer({ min: 0, max: strategies.length - 1 }),
        (t, si) => {
          const r = maskers[si].mask(t);
          const b = maskers[si].maskUtf8(Buffer.from(t, 'utf8'));
          if (r.count === 0) expect(b).toBeNull();
          else {
            expect(b!.buf.toString('utf8')).toBe(r.text);
            expect(b!.count).toBe(r.count);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('masking JSON text keeps it valid JSON', () => {
    const value = fc.array(fc.oneof(piece, fc.constantFrom('\n', '"', '\\', '\t', '/', '\u2028')), { maxLength: 8 }).map((p) => p.join(''));
    const doc = fc.dictionary(fc.constantFrom('note', 'email', 'password', 'api_key', 'card'), value, { maxKeys: 4 });
    fc.assert(
      fc.property(doc, fc.integer({ min: 0, max: strategies.length - 1 }), (obj, si) => {
        const out = maskers[si].mask(JSON.stringify(obj)).text;
        expect(() => JSON.parse(out)).not.toThrow();
      }),
      { numRuns: RUNS },
    );
  });

  it('matches are sorted, non-overlapping and inside the text', () => {
    fc.assert(
      fc.property(text, (t) => {
        const ms = scanMatches(t, compiled);
        let last = 0;
        for (const m of ms) {
          expect(m.start).toBeGreaterThanOrEqual(last);
          expect(m.end).toBeGreaterThan(m.start);
          expect(m.end).toBeLessThanOrEqual(t.length);
          last = m.end;
        }
      }),
    );
  });
});
