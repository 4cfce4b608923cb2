// The tight hold-back (holdFrom in ../detectors.ts): prose flows out at once, a sensitive value
// split anywhere (also inside its key word, "pass|word=", or inside "-----BE|GIN") never leaks,
// and the assembled output is exactly masker.mask(full text).
import fc from 'fast-check';
import type { DetectorName, MaskStrategy } from '../../policy/types';
import { DETECTOR_NAMES, compileDetectors, findMatches, holdFrom } from '../detectors';
import { createTextMasker, type TextMasker } from '../masker';
import { createHeldText } from './held-text';
import { createSseMasker } from './sse';
import { readClient, stream, type Fmt, splitText } from '../../../test/support/common/sse-testkit';

const RUNS = Number(process.env.FC_RUNS ?? 300);
const hashKey = Buffer.from('tight-hold-test-key-0123456789');

const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7Qz9/+abc=\nQmFzZTY0Ym9keQ==\n-----END RSA PRIVATE KEY-----';
const VALUES = [
  '4111 1111 1111 1111',
  '4111-1111-1111-1111',
  '5555555555554444',
  '3782 822463 10005',
  'alice@example.com',
  'Bob.Smith+x@mail.example.co.uk',
  '123-45-6789',
  '+14155552671',
  '(415) 555-2671',
  '+44 20 7946 0958',
  '1-415-555-2671',
  'DE89370400440532013000',
  'GB82 WEST 1234 5698 7654 32',
  'sk-proj-Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345',
  'AKIAIOSFODNN7EXAMPLE',
  'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
  'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz',
  'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
  'xoxb-1234567890-abcdefghij',
  'AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y',
  'password=hunter2hunter2',
  'password = "correct horse battery"',
  'DB_PASSWORD=s3cr3t;',
  '"api_key": "abc123xyz"',
  "passwd: 'p@ss w0rd'",
  'client_secret=>tok3n',
  'password=null',
  'password=****',
  'password=',
  '\\"password\\": \\"inner\\"',
  'access-token: abc.def/ghi+jkl==',
  'https://admin:pa55w0rd@db.example.com/x',
  'postgres://u:p@h:5432/db',
  PEM,
  '-----BEGIN PUBLIC KEY-----',
];
const WORDS = [
  'the',
  'order',
  'shipped',
  'on',
  'time',
  'pass',
  'word',
  'key',
  'api',
  'BEGIN',
  '-----',
  '@',
  ':',
  '=',
  '.',
  ',',
  '42',
  '2024',
  '(',
  ')',
  '+',
  'DE',
  'sk',
  'eyJ',
  'null',
  '\n',
  '\\n',
  '"',
  'é',
  '👍',
  'https://',
  'x',
  'I',
  'A1',
];
const GLUE = [' ', ' ', ' ', '', '\n', ', ', '. '];
/** Split points are also forced inside these, at a random offset. */
const MARKERS = ['password', 'passwd', 'secret', 'api_key', '-----BEGIN', '-----END', '://', 'eyJ', '@', 'sk-', 'AKIA', '4111', '+1'];

// Words glue to anything ("pass" + "word=", "x" + a card); values glue to each other too, which
// exercises masking's re-scans (masker.ts MAX_PASSES): "...KEY-----" + "-----BEGIN ..." (a second
// PEM block) or "alice@example.com+14155552671" only match once their neighbour is masked.
const GLUE_AFTER_VALUE = [' ', '\n', ', ', '. ', ' and ', '', ''];
const part = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...WORDS), fc.constantFrom(...GLUE)) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...VALUES), fc.constantFrom(...GLUE_AFTER_VALUE)) },
);
const text = fc.array(part, { minLength: 1, maxLength: 16 }).map((ps) => ps.map(([p, g]) => p + g).join(''));
const detectorSets: DetectorName[][] = [
  [...DETECTOR_NAMES],
  ['credit-card'],
  ['secret-key'],
  ['email'],
  ['us-ssn', 'phone'],
  ['iban', 'credit-card'],
  ['email', 'secret-key'],
];
const strategies: MaskStrategy[] = ['redact', 'last4', 'hash'];

function cutPoints(full: string, random: number[], inside: number[]): number[] {
  const points = random.map((c) => c % (full.length + 1));
  let k = 0;
  for (const m of MARKERS) {
    for (let at = full.indexOf(m); at >= 0; at = full.indexOf(m, at + 1)) {
      points.push(at + (inside.length === 0 ? 1 : inside[k++ % inside.length] % (m.length + 1)));
    }
  }
  return [...new Set(points)].filter((p) => p > 0 && p < full.length).sort((a, b) => a - b);
}

function viaHeldText(m: TextMasker, deltas: string[]): string {
  const h = createHeldText(m);
  let out = '';
  for (const d of deltas) out += h.push(d);
  return out + h.flush();
}

function viaSse(m: TextMasker, deltas: string[], fmt: Fmt): string {
  const sse = createSseMasker({ masker: m });
  return readClient(sse.push(stream(fmt, deltas)) + sse.end()).text;
}

describe('tight hold-back', () => {
  it('property: prose with sensitive values, split anywhere (inside key words too), assembles to masker.mask(full)', () => {
    fc.assert(
      fc.property(
        text,
        fc.array(fc.nat(2000), { maxLength: 20 }),
        fc.array(fc.nat(64), { maxLength: 8 }),
        fc.constantFrom(...detectorSets),
        fc.constantFrom(...strategies),
        fc.constantFrom<Fmt | 'held'>('held', 'held', 'openai', 'responses', 'anthropic'),
        (full, random, inside, detectors, strategy, via) => {
          const m = createTextMasker({ detectors, strategy, hashKey });
          const deltas = splitText(full, cutPoints(full, random, inside));
          const got = via === 'held' ? viaHeldText(m, deltas) : viaSse(m, deltas, via);
          expect(got).toBe(m.mask(full).text);
          expect(findMatches(got, detectors)).toEqual([]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('property: one character per delta', () => {
    fc.assert(
      fc.property(text, fc.constantFrom(...detectorSets), (full, detectors) => {
        const m = createTextMasker({ detectors, strategy: 'redact', hashKey });
        expect(viaHeldText(m, [...full])).toBe(m.mask(full).text);
      }),
      { numRuns: Math.ceil(RUNS / 3) },
    );
  });

  it('property: what is released is final (holdFrom never releases text a later delta changes)', () => {
    // Stronger than the end-to-end check: after every delta, the released output so far is a
    // prefix of the final masked text.
    fc.assert(
      fc.property(
        text,
        fc.array(fc.nat(2000), { maxLength: 20 }),
        fc.array(fc.nat(64), { maxLength: 8 }),
        fc.constantFrom(...detectorSets),
        (full, random, inside, detectors) => {
          const m = createTextMasker({ detectors, strategy: 'redact', hashKey });
          const expected = m.mask(full).text;
          const h = createHeldText(m);
          let out = '';
          for (const d of splitText(full, cutPoints(full, random, inside))) {
            out += h.push(d);
            if (!expected.startsWith(out))
              throw new Error(`released ${JSON.stringify(out)} is not a prefix of ${JSON.stringify(expected)}`);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it.each([
    ['credit card', 'Pay with 4111 1111 1111 1111 today', ['credit-card']],
    ['password split inside the key word', 'Your password=hunter2hunter2 is set', [...DETECTOR_NAMES]],
    ['quoted password', 'set "password": "correct horse battery staple" now', [...DETECTOR_NAMES]],
    ['PEM split inside -----BEGIN', `key:\n${PEM}\ndone`, [...DETECTOR_NAMES]],
    ['URL userinfo', 'connect to https://admin:pa55w0rd@db.example.com/x please', [...DETECTOR_NAMES]],
    ['JWT', 'token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6y ok', ['secret-key']],
    ['email', 'mail ops-team@payments.example.net.', [...DETECTOR_NAMES]],
    ['phone with parenthesised group', 'call +44 (0)20 7946 0958 now', ['phone']],
  ] as Array<[string, string, DetectorName[]]>)(
    '%s: every two- and three-way split assembles to masker.mask(full)',
    (_, full, detectors) => {
      const m = createTextMasker({ detectors, strategy: 'redact', hashKey });
      const expected = m.mask(full).text;
      expect(expected).not.toBe(full);
      for (let i = 1; i < full.length; i++) {
        expect(viaHeldText(m, [full.slice(0, i), full.slice(i)])).toBe(expected);
        for (let j = i + 1; j < full.length; j += 3)
          expect(viaHeldText(m, [full.slice(0, i), full.slice(i, j), full.slice(j)])).toBe(expected);
      }
    },
  );

  it('a value that only matches after its neighbour is masked (second PEM block glued to the first) does not leak', () => {
    // Leaked before the pass-by-pass replay: the streaming scan saw "-----" before the second
    // "-----BEGIN" (no PEM lead), masker.mask finds it on its second pass.
    const body = 'MIIEowIBAAKCAQEAx7Qz9abc\n'.repeat(20);
    const pem = `-----BEGIN RSA PRIVATE KEY-----\n${body}-----END RSA PRIVATE KEY-----`;
    for (const full of ['key: ' + pem + pem + ' the end', 'call alice@example.com+14155552671(415) 555-2671 now']) {
      for (const strategy of strategies) {
        const m = createTextMasker({ detectors: DETECTOR_NAMES, strategy, hashKey });
        const expected = m.mask(full).text;
        expect(expected).not.toContain('MIIE');
        for (const size of [1, 4, 7, 64]) expect(viaHeldText(m, full.match(new RegExp(`[\\s\\S]{1,${size}}`, 'g'))!)).toBe(expected);
      }
    }
  });

  it('holds only the tail that can still change', () => {
    const all = compileDetectors(DETECTOR_NAMES);
    // trimStart: the glue rule also holds the space before a held word or number.
    const tail = (s: string): string => s.slice(holdFrom(s, all)).trimStart();
    expect(tail('The order shipped on time and ')).toBe('');
    expect(tail('The order shipped on ti')).toBe('ti');
    expect(tail('Pay with 4111 1111 11')).toBe('4111 1111 11');
    expect(tail('Pay with 4111 1111 1111 1111')).toBe('4111 1111 1111 1111');
    expect(tail('Pay with 4111 1111 1111 1111.')).toBe('4111 1111 1111 1111.');
    expect(tail('Your pass')).toBe('pass');
    expect(tail('Your password ')).toBe('password ');
    expect(tail('Your password=')).toBe('password=');
    expect(tail('Your password= null')).toBe('password= null');
    expect(tail('Your password=hunter2 and')).toBe('hunter2 and'); // '2' could end a number glued to the next word
    expect(tail('set "password": "correct horse')).toBe('password": "correct horse');
    expect(tail('key:\n-----BE')).toBe('-----BE');
    expect(tail('key:\n-----BEGIN RSA PRIV')).toBe('-----BEGIN RSA PRIV');
    expect(tail('key:\n-----BEGIN RSA PRIVATE KEY---')).toBe('-----BEGIN RSA PRIVATE KEY---');
    expect(tail('go to https://admin:pa55')).toBe('://admin:pa55');
    expect(tail('as follows:')).toBe(':');
    expect(tail('mail ops-team@payments.exam')).toBe('ops-team@payments.exam');
    const cardOnly = compileDetectors(['credit-card']);
    expect('Pay with 4111 1111 11 x'.slice(holdFrom('Pay with 4111 1111 11 x', cardOnly))).toBe('');
    expect('Order 42 shipped, '.slice(holdFrom('Order 42 shipped, ', cardOnly))).toBe('');
  });
});
