// A split-value corpus streamed through a running sidecar: the fake upstream streams a sensitive
// value (cards with spaces/dashes, emails, SSNs, secret keys) split across 2, 3 and many SSE
// deltas; the official openai SDK consumes the stream through the route. Zero leaks in the
// concatenated content, the surrounding text intact, and the stream keeps streaming: the first
// content chunk reaches the client before the upstream has sent its last event. The measured
// extra delay (sidecar vs direct) is printed at the end.
import OpenAI from 'openai';
import { startSidecarFixture, type SidecarFixture } from '../../../test/support/sidecar/sidecar-fixture';

const KEY = 'sk-real-openai-key-0123456789abcdef';
const PREFIX = 'Customer record: ';
const SUFFIX = ', please verify it.';
const REDACTED = '[REDACTED]';
const DELAY_MS = 8;

const VALUES: Array<{ kind: string; value: string }> = [
  { kind: 'card (spaces)', value: '4111 1111 1111 1111' },
  { kind: 'card (dashes)', value: '4111-1111-1111-1111' },
  { kind: 'card (mastercard)', value: '5555 5555 5555 4444' },
  { kind: 'card (amex 4-6-5)', value: '3782 822463 10005' },
  { kind: 'card (no separators)', value: '6011111111111117' },
  { kind: 'email', value: 'jane.doe@example.com' },
  { kind: 'email (plus, subdomain)', value: 'billing+eu@corp-mail.example.org' },
  { kind: 'us-ssn (dashes)', value: '536-22-1234' },
  { kind: 'us-ssn (spaces)', value: '401 55 7788' },
  { kind: 'secret-key sk-proj', value: 'sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6lMn9oPq' },
  { kind: 'secret-key AWS', value: 'AKIAZ7QWERTY12345678' },
  { kind: 'secret-key GitHub', value: 'ghp_R2d2C3poBb8Yoda1Luke9Leia4Han5Solo7X' },
];

/** Deltas carrying PREFIX + value + SUFFIX with the value split into `parts` pieces ('many': 1-2 characters each). */
function split(value: string, parts: 2 | 3 | 'many'): string[] {
  if (parts === 'many') {
    const out = [PREFIX];
    for (let i = 0; i < value.length; i += 1 + (i % 2)) out.push(value.slice(i, i + 1 + (i % 2)));
    out.push(SUFFIX);
    return out;
  }
  const cuts = parts === 2 ? [Math.floor(value.length / 2)] : [Math.floor(value.length / 3), Math.floor((2 * value.length) / 3)];
  const pieces: string[] = [];
  let at = 0;
  for (const c of [...cuts, value.length]) {
    pieces.push(value.slice(at, c));
    at = c;
  }
  pieces[0] = PREFIX + pieces[0];
  pieces[pieces.length - 1] += SUFFIX;
  return pieces;
}

const CASES = VALUES.flatMap(({ kind, value }) =>
  ([2, 3, 'many'] as const).map((parts) => ({ name: `${kind} split ${parts}`, value, chunks: split(value, parts) })),
);

let fx: SidecarFixture;
const viaSidecar: Array<{ ttfc: number; total: number; firstLag: number; placeholderLag: number }> = [];
const direct: Array<{ ttfc: number; total: number; firstLag: number }> = [];

beforeAll(async () => {
  fx = await startSidecarFixture({
    secrets: { openai: { token: KEY } },
    policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: streaming-leaks}
spec:
  defaultAction: allow
  targets:
    - name: openai
      http:
        baseUrl: http://127.0.0.1:${port}
        credentialsSecret: openai
        timeout: 5s
  masking:
    - name: pii
      detectors: [credit-card, email, us-ssn, secret-key]
      strategy: redact
`,
  });
});

afterAll(async () => {
  await fx?.close();
  const stat = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    return `median ${q(0.5).toFixed(2)} ms, p95 ${q(0.95).toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms`;
  };
  if (viaSidecar.length > 0 && direct.length > 0) {
    process.stdout.write(
      [
        `streaming-leaks timing over ${viaSidecar.length} streams (chunkDelayMs ${DELAY_MS}):`,
        `  first content chunk, upstream send -> SDK receive: direct ${stat(direct.map((d) => d.firstLag))}; via sidecar ${stat(viaSidecar.map((d) => d.firstLag))}`,
        `  time to first content chunk (from request start):  direct ${stat(direct.map((d) => d.ttfc))}; via sidecar ${stat(viaSidecar.map((d) => d.ttfc))}`,
        `  whole stream:                                       direct ${stat(direct.map((d) => d.total))}; via sidecar ${stat(viaSidecar.map((d) => d.total))}`,
        `  [REDACTED] placeholder receive - send of the delta that completes the value and its terminator: ${stat(viaSidecar.map((d) => d.placeholderLag))}`,
        '',
      ].join('\n'),
    );
  }
});

interface Streamed {
  text: string;
  /** performance.now() when each content-bearing chunk arrived, with its content. */
  received: Array<{ at: number; content: string }>;
  start: number;
  end: number;
}

async function streamVia(baseURL: string, chunks: string[], delayMs: number): Promise<Streamed> {
  fx.upstream.chunks = chunks;
  fx.upstream.chunkDelayMs = delayMs;
  const client = new OpenAI({ baseURL, apiKey: 'warden-managed', maxRetries: 0, timeout: 5000 });
  const start = performance.now();
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'record?' }],
    stream: true,
  });
  const received: Streamed['received'] = [];
  let text = '';
  for await (const chunk of stream) {
    const content = chunk.choices[0]?.delta?.content ?? '';
    if (content !== '') received.push({ at: performance.now(), content });
    text += content;
  }
  return { text, received, start, end: performance.now() };
}

/** Every spelling a leak could take: the value, its digits/alphanumerics alone, and each half-plus of it. */
function expectNoLeak(text: string, value: string): void {
  expect(text).not.toContain(value);
  const squash = (s: string) => s.replace(/[^0-9A-Za-z]/g, '');
  expect(squash(text)).not.toContain(squash(value));
  // No run of more than half of the value's characters survives.
  const n = Math.ceil(squash(value).length / 2) + 1;
  for (let i = 0; i + n <= squash(value).length; i++) expect(squash(text)).not.toContain(squash(value).slice(i, i + n));
}

test(`corpus has at least 30 cases (${CASES.length})`, () => {
  expect(CASES.length).toBeGreaterThanOrEqual(30);
});

describe.each(CASES)('$name', ({ value, chunks }) => {
  test('zero leaks, surrounding text intact, streaming before the end', async () => {
    const d = await streamVia(`http://127.0.0.1:${fx.upstream.port}/v1`, chunks, DELAY_MS);
    const dt = fx.upstream.streams.at(-1)!;
    expect(d.text).toBe(PREFIX + value + SUFFIX); // the corpus value really is in the upstream stream
    direct.push({ ttfc: d.received[0].at - d.start, total: d.end - d.start, firstLag: d.received[0].at - dt.sentAt[1] });

    const s = await streamVia(`${fx.egress}/openai/v1`, chunks, DELAY_MS);
    const timing = fx.upstream.streams.at(-1)!;
    expectNoLeak(s.text, value);
    expect(s.text).toBe(PREFIX + REDACTED + SUFFIX);
    expect(fx.events.at(-1)).toMatchObject({ target: 'openai', decision: 'mask', status: 200 });
    expect(fx.events.at(-1)!.masked).toBeGreaterThanOrEqual(1);

    // Streaming: the first content reached the SDK before the upstream wrote its last event.
    const lastSent = timing.sentAt[timing.sentAt.length - 1];
    expect(s.received[0].at).toBeLessThan(lastSent);
    expect(s.received[0].content.length).toBeGreaterThan(0);
    // The delta that completes the value plus one following character (what a detector needs to see its end).
    let upto = 0;
    let k = 0;
    for (; k < chunks.length; k++) {
      upto += chunks[k].length;
      if (upto >= PREFIX.length + value.length + 1) break;
    }
    const placeholder = s.received.find((r) => r.content.includes(REDACTED))!;
    viaSidecar.push({
      ttfc: s.received[0].at - s.start,
      total: s.end - s.start,
      firstLag: s.received[0].at - timing.sentAt[1],
      placeholderLag: placeholder.at - timing.sentAt[k + 1], // sentAt[0] is the role-only chunk
    });
  });
});

describe('2-way split at every offset of the value', () => {
  test.each(VALUES.filter((_, i) => [0, 1, 5, 7, 9, 10, 11].includes(i)))('$kind', async ({ value }) => {
    for (let cut = 1; cut < value.length; cut++) {
      const s = await streamVia(`${fx.egress}/openai/v1`, [PREFIX + value.slice(0, cut), value.slice(cut) + SUFFIX], 0);
      expectNoLeak(s.text, value);
      expect(s.text).toBe(PREFIX + REDACTED + SUFFIX);
    }
  });

  test('every cut into 3 pieces of a card with spaces', async () => {
    const value = VALUES[0].value;
    for (let a = 1; a < value.length - 1; a++) {
      for (let b = a + 1; b < value.length; b++) {
        const s = await streamVia(`${fx.egress}/openai/v1`, [PREFIX + value.slice(0, a), value.slice(a, b), value.slice(b) + SUFFIX], 0);
        expect(s.text).toBe(PREFIX + REDACTED + SUFFIX);
      }
    }
  });
});
