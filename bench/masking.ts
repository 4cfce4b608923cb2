// Micro-benchmark for common/masking: CPU time per value on the paths the data plane uses.
//   npx tsc -p tsconfig.dev.json && node dist-dev/bench/masking.js
// Each case runs over a corpus of values; the figure is the best of several rounds of CPU
// time (process.cpuUsage), which stays meaningful on a shared, busy machine where wall-clock
// medians swing by 2x. Two reference loops calibrate the machine: compare against them.

import { DETECTOR_NAMES, compileDetectors, mightMatch } from '../common/masking/detectors';
import { createTextMasker, type TextMasker } from '../common/masking/masker';

const hashKey = Buffer.from('bench-key-0123456789abcdef');

// What text columns and JSON strings mostly hold: values the detectors must let through.
const typical = [
  'Alice Johnson',
  'active',
  'Premium support plan, renews monthly',
  'Zürich, Bahnhofstrasse',
  'Müller GmbH & Co. KG',
  'shipped',
  'https://example.com/products/widget?ref=home',
  'The customer asked about the delivery date and was told it ships Monday.',
  // with digits: these pass the pre-check and run the detectors
  '2024-01-15 10:30:00.123456+00',
  '550e8400-e29b-41d4-a716-446655440000',
  'ORD-2024-000123',
  'v2.14.3',
  '199.99',
  '{"sku":"W-100","qty":3,"price":19.99,"tags":["blue","large"]}',
  'Suite 400, 1200 Main Street',
  'user_preferences_v2',
];
const noDigits = typical.filter((v) => !/[0-9]/.test(v));
const withDigits = typical.filter((v) => /[0-9]/.test(v));

// Values that contain something to mask.
const sensitive = [
  '4111 1111 1111 1111',
  'alice.smith@example.com',
  'SSN 123-45-6789 on file',
  'Call me at (415) 555-2671 after 5pm',
  'IBAN DE89 3704 0044 0532 0130 00',
  'OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLmNoPqRsTuVwXyZ012345',
  '{"email":"bob@example.org","card":"5555555555554444","note":"vip"}',
  'password=hunter2',
];

let sink = 0;

function measure(values: readonly string[], run: (i: number) => unknown): number {
  const perRound = 100_000;
  let best = Infinity;
  for (let r = 0; r < 12; r++) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < perRound; k++) if (run(k % values.length)) sink++;
    const c = process.cpuUsage(c0);
    best = Math.min(best, ((c.user + c.system) * 1000) / perRound);
  }
  return best;
}

function row(label: string, values: readonly string[], run: (i: number) => unknown): void {
  const ns = measure(values, run);
  const avgBytes = values.reduce((a, v) => a + Buffer.byteLength(v), 0) / values.length;
  console.log(
    `${label.padEnd(46)} ${ns.toFixed(0).padStart(6)} ns/value   ${(ns / avgBytes).toFixed(1).padStart(5)} ns/byte  (${values.length} values, avg ${avgBytes.toFixed(0)} B)`,
  );
}

function suite(name: string, m: TextMasker): void {
  console.log(`\n${name}`);
  const sets: Array<[string, readonly string[]]> = [
    ['typical, no digits', noDigits],
    ['typical, with digits', withDigits],
    ['sensitive', sensitive],
  ];
  for (const [label, values] of sets) {
    const bufs = values.map((v) => Buffer.from(v));
    row(`  ${label.padEnd(22)} mask(string)`, values, (i) => m.mask(values[i]).count);
    row(`  ${label.padEnd(22)} maskUtf8(Buffer)`, values, (i) => m.maskUtf8(bufs[i]));
  }
}

function main(): void {
  console.log(`node ${process.version}; best-of-12 CPU time per value`);
  suite('all detectors, redact', createTextMasker({ detectors: DETECTOR_NAMES, strategy: 'redact', hashKey }));
  suite('all detectors, last4', createTextMasker({ detectors: DETECTOR_NAMES, strategy: 'last4', hashKey }));
  suite('all detectors, hash', createTextMasker({ detectors: DETECTOR_NAMES, strategy: 'hash', hashKey }));
  suite('email only, redact', createTextMasker({ detectors: ['email'], strategy: 'redact', hashKey }));

  console.log('\npre-check alone, all detectors');
  const d = compileDetectors(DETECTOR_NAMES);
  row('  mightMatch(string), typical', typical, (i) => mightMatch(typical[i], d));

  console.log('\nreference loops (machine calibration)');
  const re = /[0-9@]/;
  row('  /[0-9@]/.test(string), typical', typical, (i) => re.test(typical[i]));
  row('  charCodeAt sum over the string, typical', typical, (i) => {
    const s = typical[i];
    let x = 0;
    for (let k = 0; k < s.length; k++) x += s.charCodeAt(k);
    return x & 1;
  });
  if (sink < 0) console.log(sink); // keep results alive
}

main();
