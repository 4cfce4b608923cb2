// Properties over random texts, random delta splittings and random transport chunking:
//   1. the client-assembled text equals masker.mask(full text).text exactly (stronger than "no
//      match and non-matching text preserved", and it holds in every run we have seen);
//   2. the output is well-formed SSE: every event terminated, every data payload JSON;
//   3. no detector matches the assembled text.
import fc from 'fast-check';
import type { DetectorName, MaskStrategy } from '../../policy/types';
import { DETECTOR_NAMES, findMatches } from '../detectors';
import { createTextMasker } from '../masker';
import { createSseMasker } from './sse';
import { byteChunks, readClient, stream, type Fmt, splitText } from '../../../test/support/common/sse-testkit';

const RUNS = Number(process.env.FC_RUNS ?? 300);
const hashKey = Buffer.from('property-test-key-0123456789');

const samples = [
  '4111 1111 1111 1111',
  '5555-5555-5555-4444',
  '378282246310005',
  'alice@example.com',
  'Bob.Smith+x@mail.example.co.uk',
  '123-45-6789',
  '+14155552671',
  '(415) 555-2671',
  'DE89370400440532013000',
  'sk-proj-Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345',
  'AKIAIOSFODNN7EXAMPLE',
  'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
  'password=hunter2hunter2',
  '41111111111111112',
  '4111 1111',
  'v2.14.3',
  'order 12345',
  '@',
  'sk-',
  '-',
  ' ',
  '\n',
  'é',
  '👍',
  'x',
  '7',
];
const piece = fc.oneof(fc.constantFrom(...samples), fc.string({ maxLength: 6 }), fc.stringMatching(/^[0-9 @.\-a-z]{1,8}$/));
const text = fc.array(piece, { maxLength: 14 }).map((p) => p.join(''));
const detectorSets: DetectorName[][] = [
  [...DETECTOR_NAMES],
  ['credit-card'],
  ['us-ssn', 'phone'],
  ['email'],
  ['secret-key'],
  ['iban', 'credit-card'],
];
const strategies: MaskStrategy[] = ['redact', 'last4', 'hash'];

describe('SSE masking properties', () => {
  it('assembled text equals masker.mask(full), output is valid SSE with JSON data', () => {
    fc.assert(
      fc.property(
        text,
        fc.array(fc.nat(400), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }),
        fc.constantFrom<Fmt>('openai', 'responses', 'anthropic'),
        fc.constantFrom(...detectorSets),
        fc.constantFrom(...strategies),
        (full, cuts, sizes, fmt, detectors, strategy) => {
          const masker = createTextMasker({ detectors, strategy, hashKey });
          const sse = createSseMasker({ masker });
          let out = '';
          for (const c of byteChunks(stream(fmt, splitText(full, cuts)), sizes)) out += sse.push(c);
          out += sse.end();
          const client = readClient(out); // throws on an unterminated event or non-JSON data
          expect(client.text).toBe(masker.mask(full).text);
          expect(findMatches(client.text, detectors)).toEqual([]);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
