// The delay masking adds to a stream: an LLM emits a ~4-character delta every 20 ms (simulated
// clock, no sleeps); for each delta, the time until its last character reaches the client.
// Printed for the closing note; the assertions only pin the order of magnitude.
import type { DetectorName } from '../../policy/types';
import { DETECTOR_NAMES } from '../detectors';
import { createTextMasker } from '../masker';
import { createSseMasker } from './sse';
import { readClient, stream } from '../../../test/support/common/sse-testkit';

const hashKey = Buffer.from('0123456789abcdef0123456789abcdef');
const TEXT =
  'Sure. The customer on file is Jane Roe, card 4111 1111 1111 1111, reachable by phone. ' +
  'Her last three orders shipped on time and there are no open tickets. '.repeat(12) +
  'Let me know if you want me to draft a reply.';
const INTERVAL_MS = 20;

interface Delay {
  maxHeldChars: number;
  p50: number;
  max: number;
  firstEventMs: number;
}

function measure(detectors: DetectorName[], holdBackChars?: number): Delay {
  // last4 keeps a card's length, so released characters line up with arrived ones.
  const masker = createTextMasker({ detectors, strategy: 'last4', hashKey });
  const deltas = TEXT.match(/.{1,4}/gs)!;
  const sse = createSseMasker({ masker, holdBackChars });
  const events = stream('openai', deltas).split(/(?<=\n\n)/);
  let released = 0; // characters of delta text the client has received
  let firstEventMs = -1;
  const arrivedUpTo: number[] = []; // cumulative length after delta k
  const releaseTime: number[] = [];
  let total = 0;
  let k = -1; // index of the delta being pushed (-1 = role chunk)
  const record = (out: string, now: number): void => {
    if (out !== '' && firstEventMs < 0) firstEventMs = now;
    released += readClient(out).text.length;
    for (let d = releaseTime.length; d < arrivedUpTo.length && arrivedUpTo[d] <= released; d++) releaseTime[d] = now;
  };
  for (const ev of events) {
    const now = Math.max(k, 0) * INTERVAL_MS;
    const isDelta = k >= 0 && k < deltas.length;
    if (isDelta) arrivedUpTo.push((total += deltas[k].length));
    record(sse.push(ev), now);
    k++;
  }
  record(sse.end(), deltas.length * INTERVAL_MS);
  const lags = arrivedUpTo.map((_, d) => releaseTime[d] - d * INTERVAL_MS).sort((a, b) => a - b);
  return { maxHeldChars: sse.stats().maxHeldChars, p50: lags[lags.length >> 1], max: lags[lags.length - 1], firstEventMs };
}

describe('added streaming delay (simulated, a delta every 20 ms)', () => {
  it('reports held characters and p50/max delay per detector set', () => {
    const rows: Array<[string, Delay]> = [
      ['all detectors (window 317)', measure([...DETECTOR_NAMES])],
      ['credit-card, us-ssn, phone, iban (window 57)', measure(['credit-card', 'us-ssn', 'phone', 'iban'])],
      ['credit-card only (window 23)', measure(['credit-card'])],
      ['all detectors, holdBackChars 64 (below the safe bound)', measure([...DETECTOR_NAMES], 64)],
    ];
    const lines = rows.map(
      ([name, d]) => `${name}: maxHeldChars=${d.maxHeldChars} p50=${d.p50}ms max=${d.max}ms firstEvent=${d.firstEventMs}ms`,
    );
    console.log(`SSE hold-back delay, ${TEXT.length} chars in 4-char deltas every ${INTERVAL_MS} ms:\n` + lines.join('\n'));
    for (const [, d] of rows) expect(d.firstEventMs).toBe(0); // the first event is never held
    const cardOnly = rows[2][1];
    // window (23) plus a whole card held while it grows (24), in 4-char deltas, plus one interval
    expect(cardOnly.max).toBeLessThanOrEqual(Math.ceil((23 + 24) / 4) * INTERVAL_MS + INTERVAL_MS);
    // The tight hold (holdFrom): prose waits for at most its current word, only the card is held
    // while it arrives, with every detector on as with one.
    for (const [, d] of rows) {
      expect(d.maxHeldChars).toBeLessThanOrEqual(24);
      expect(d.p50).toBeLessThanOrEqual(INTERVAL_MS);
      expect(d.max).toBeLessThanOrEqual(Math.ceil(24 / 4) * INTERVAL_MS);
    }
  });
});
