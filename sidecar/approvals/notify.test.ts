import { createHmac, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import { createLogger } from '../../common/log';
import { createApprovalGate } from './gate';
import { LocalApprovalStore } from './local-store';
import { createNotifier, MAX_DISPLAY_BYTES, parseRetryAfter, truncateUtf8 } from './notify';
import type { ApprovalRequest } from './types';
import { startReceiver, type Receiver } from '../../test/support/http-receiver';

/** A real receiver on 127.0.0.1:0; `respond` decides each answer by call index (undefined: never answer). */
async function receiver(
  respond: (n: number, res: http.ServerResponse) => void | undefined,
): Promise<Receiver & { url: string; host: string }> {
  const rx = await startReceiver(respond);
  return {
    ...rx,
    // Secret-bearing path and query, as a Slack webhook URL has.
    url: `http://127.0.0.1:${rx.port}/services/T000/B000/SECRETPATH?token=SECRETQUERY`,
    host: `127.0.0.1:${rx.port}`,
  };
}

const answer =
  (status: number, headers: Record<string, string> = {}) =>
  (_n: number, res: http.ServerResponse) => {
    res.writeHead(status, headers);
    res.end(status < 300 ? 'ok' : 'nope');
  };

function capture(): { log: ReturnType<typeof createLogger>; lines: string[]; parsed(): Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const log = createLogger({}, 'debug', (l) => lines.push(l));
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function request(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    id: '0123456789abcdef01234567',
    policy: 'shop/agent-policy',
    rule: 'deletes-need-approval',
    target: 'orders-db',
    requester: { subject: 'system:serviceaccount:shop:agent', groups: ['agents'] },
    operation: { kind: 'sql', display: "DELETE FROM orders WHERE id = $1\n-- bound parameters:\n  $1 = '7'", digest: 'a'.repeat(64) },
    approvers: { users: [], groups: ['sre'] },
    required: 1,
    createdAt: '2030-01-01T00:00:00.000Z',
    expiresAt: '2030-01-01T00:10:00.000Z',
    state: 'pending',
    decisions: [],
    ...over,
  };
}

function noSecretsLogged(lines: string[]): void {
  for (const l of lines) {
    expect(l).not.toContain('SECRETPATH');
    expect(l).not.toContain('SECRETQUERY');
    expect(l).not.toContain('/services/');
  }
}

describe('approval notifier', () => {
  test('webhook: JSON body, event headers, signature verifies with an independent HMAC', async () => {
    const rx = await receiver(answer(204));
    try {
      const n = createNotifier([{ kind: 'webhook', url: rx.url, secret: 's3cr3t' }]);
      const req = request();
      n.notify(req, 'created');
      await n.idle();
      expect(rx.got).toHaveLength(1);
      const { headers, body, path } = rx.got[0];
      expect(path).toBe('/services/T000/B000/SECRETPATH?token=SECRETQUERY');
      expect(headers['content-type']).toBe('application/json');
      expect(headers['x-warden-event']).toBe('approval.created');
      expect(headers['x-warden-delivery']).toMatch(/^[0-9a-f-]{36}$/);
      const ts = String(headers['x-warden-timestamp']);
      expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(5);
      const expected = Buffer.from(
        'sha256=' +
          createHmac('sha256', 's3cr3t')
            .update(ts + '.' + body)
            .digest('hex'),
      );
      const sig = Buffer.from(String(headers['x-warden-signature']));
      expect(sig.length).toBe(expected.length);
      expect(timingSafeEqual(sig, expected)).toBe(true);
      // A wrong secret or a tampered body does not verify.
      expect(
        createHmac('sha256', 'other')
          .update(ts + '.' + body)
          .digest('hex'),
      ).not.toBe(sig.toString().slice(7));
      const parsed = JSON.parse(body);
      expect(parsed.type).toBe('approval.created');
      expect(parsed.approval).toEqual(req);
      expect(Date.parse(parsed.sentAt)).toBeGreaterThan(Date.now() - 5000);
    } finally {
      await rx.close();
    }
  });

  test('webhook without a secret has no signature header; each event type is named', async () => {
    const rx = await receiver(answer(200));
    try {
      const n = createNotifier([{ kind: 'webhook', url: rx.url }]);
      n.notify(request({ state: 'approved' }), 'decided');
      n.notify(request({ state: 'expired' }), 'expired');
      n.notify(request({ state: 'cancelled' }), 'cancelled');
      await n.idle();
      expect(rx.got.map((g) => g.headers['x-warden-event']).sort()).toEqual(['approval.cancelled', 'approval.decided', 'approval.expired']);
      expect(rx.got.every((g) => g.headers['x-warden-signature'] === undefined)).toBe(true);
      expect(new Set(rx.got.map((g) => g.headers['x-warden-delivery'])).size).toBe(3);
    } finally {
      await rx.close();
    }
  });

  test('operation display is truncated to 4 KiB (UTF-8 bytes, whole characters) in the payload', async () => {
    const rx = await receiver(answer(200));
    try {
      const n = createNotifier([{ kind: 'webhook', url: rx.url }]);
      const display = 'SELECT ' + 'é'.repeat(5000);
      n.notify(request({ operation: { kind: 'sql', display, digest: 'b'.repeat(64) } }), 'created');
      await n.idle();
      const sent = JSON.parse(rx.got[0].body).approval.operation;
      expect(Buffer.byteLength(sent.display, 'utf8')).toBeLessThanOrEqual(MAX_DISPLAY_BYTES);
      expect(sent.display).toMatch(/^SELECT é+\n… \(truncated, 10007 bytes in all\)$/);
      expect(sent.digest).toBe('b'.repeat(64));
      expect(truncateUtf8('short', MAX_DISPLAY_BYTES)).toBe('short');
    } finally {
      await rx.close();
    }
  });

  test('retries after 500, then succeeds with the same delivery id (fresh timestamp and signature each time)', async () => {
    const rx = await receiver((n, res) => answer(n < 2 ? 500 : 200)(n, res));
    const cap = capture();
    try {
      const n = createNotifier([{ kind: 'webhook', url: rx.url, secret: 'k' }], { log: cap.log, backoffMs: 20 });
      n.notify(request(), 'created');
      await n.idle();
      expect(rx.got).toHaveLength(3);
      const ids = rx.got.map((g) => g.headers['x-warden-delivery']);
      expect(new Set(ids).size).toBe(1);
      expect(new Set(rx.got.map((g) => g.body)).size).toBe(1);
      for (const g of rx.got) {
        const ts = String(g.headers['x-warden-timestamp']);
        expect(g.headers['x-warden-signature']).toBe(
          'sha256=' +
            createHmac('sha256', 'k')
              .update(ts + '.' + g.body)
              .digest('hex'),
        );
      }
      expect(cap.parsed().filter((l) => l.level === 'warn')).toEqual([]);
      expect(cap.parsed().some((l) => l.msg === 'approval notification delivered' && l.attempts === 3)).toBe(true);
      noSecretsLogged(cap.lines);
    } finally {
      await rx.close();
    }
  });

  test('429 honours Retry-After seconds', async () => {
    const rx = await receiver((n, res) => answer(n === 0 ? 429 : 200, n === 0 ? { 'retry-after': '1' } : {})(n, res));
    try {
      const n = createNotifier([{ kind: 'webhook', url: rx.url }], { backoffMs: 5 });
      n.notify(request(), 'created');
      await n.idle();
      expect(rx.got).toHaveLength(2);
      expect(rx.got[1].at - rx.got[0].at).toBeGreaterThanOrEqual(950);
      expect(parseRetryAfter('7')).toBe(7000);
      expect(parseRetryAfter(new Date(Date.now() + 3000).toUTCString())).toBeGreaterThan(1000);
      expect(parseRetryAfter('soon')).toBeUndefined();
    } finally {
      await rx.close();
    }
  });

  test('400 is not retried; a warning names the host only', async () => {
    const rx = await receiver(answer(400));
    const cap = capture();
    try {
      const n = createNotifier([{ kind: 'slack', url: rx.url }], { log: cap.log, backoffMs: 5 });
      n.notify(request(), 'created');
      await n.idle();
      await new Promise((r) => setTimeout(r, 50));
      expect(rx.got).toHaveLength(1);
      const warns = cap.parsed().filter((l) => l.level === 'warn');
      expect(warns).toHaveLength(1);
      expect(warns[0]).toMatchObject({ msg: 'approval notification rejected; not retried', status: 400, host: rx.host, target: 'slack' });
      noSecretsLogged(cap.lines);
    } finally {
      await rx.close();
    }
  });

  test('a receiver that never answers times out; notify returned immediately', async () => {
    const rx = await receiver(() => undefined);
    const cap = capture();
    try {
      const n = createNotifier([{ kind: 'webhook', url: rx.url, secret: 'x' }], {
        log: cap.log,
        timeoutMs: 200,
        retries: 1,
        backoffMs: 10,
      });
      const t0 = performance.now();
      n.notify(request(), 'created');
      const callMs = performance.now() - t0;
      expect(callMs).toBeLessThan(20);
      expect(rx.got).toHaveLength(0); // nothing was sent on the caller's stack
      const t1 = Date.now();
      await n.idle();
      const total = Date.now() - t1;
      expect(rx.got).toHaveLength(2); // the first attempt and one retry, both abandoned at 200 ms
      expect(total).toBeGreaterThanOrEqual(380);
      expect(total).toBeLessThan(3000);
      const warns = cap.parsed().filter((l) => l.level === 'warn');
      expect(warns).toEqual([
        expect.objectContaining({ msg: 'approval notification failed', error: 'timeout', attempts: 2, host: rx.host }),
      ]);
      noSecretsLogged(cap.lines);
    } finally {
      await rx.close();
    }
  });

  test('network errors are retried, then logged with the host only', async () => {
    const rx = await receiver(answer(200));
    const { url, host } = rx;
    await rx.close(); // nothing listens there now: connection refused
    const cap = capture();
    const n = createNotifier([{ kind: 'slack', url }], { log: cap.log, retries: 2, backoffMs: 5 });
    n.notify(request(), 'created');
    await n.idle();
    const warns = cap.parsed().filter((l) => l.level === 'warn');
    expect(warns).toEqual([expect.objectContaining({ msg: 'approval notification failed', error: 'ECONNREFUSED', attempts: 3, host })]);
    expect(cap.parsed().filter((l) => l.msg === 'approval notification failed; retrying')).toHaveLength(2);
    noSecretsLogged(cap.lines);
  });

  test('notify never throws: a fetch that throws synchronously only produces a warning', async () => {
    const cap = capture();
    const n = createNotifier([{ kind: 'webhook', url: 'https://hooks.example.com/x?sig=SECRETQUERY' }], {
      log: cap.log,
      retries: 0,
      fetch: () => {
        throw new Error('boom https://hooks.example.com/x?sig=SECRETQUERY');
      },
    });
    expect(() => n.notify(request(), 'created')).not.toThrow();
    expect(() => n.notify(undefined as unknown as ApprovalRequest, 'created')).not.toThrow();
    await n.idle();
    // A logger that throws does not escape either (no unhandled rejection, idle still resolves).
    const bad = createNotifier([{ kind: 'webhook', url: 'https://hooks.example.com/' }], {
      retries: 0,
      fetch: () => Promise.reject(new Error('down')),
      log: {
        ...cap.log,
        warn: () => {
          throw new Error('logger down');
        },
        debug: () => {
          throw new Error('logger down');
        },
      },
    });
    expect(() => bad.notify(request(), 'created')).not.toThrow();
    expect(() => bad.notify(null as unknown as ApprovalRequest, 'created')).not.toThrow();
    await bad.idle();
    expect(cap.parsed().filter((l) => l.level === 'warn').length).toBeGreaterThanOrEqual(1);
    expect(cap.parsed().every((l) => l.host === undefined || l.host === 'hooks.example.com')).toBe(true);
    noSecretsLogged(cap.lines);
  });

  test('a bad target URL fails at construction without echoing it', () => {
    expect(() => createNotifier([{ kind: 'slack', url: 'not a url SECRETPATH' }])).toThrow(
      /^notification target 0 \(slack\): invalid URL$/,
    );
    expect(() => createNotifier([{ kind: 'webhook', url: 'ftp://h.example/SECRETPATH' }])).toThrow(
      'notification target 0 (webhook, host h.example): URL must be http or https',
    );
  });

  test('Slack payload: text and blocks with rule, target, requester, expiry, operation code block and commands', async () => {
    const rx = await receiver(answer(200));
    try {
      const n = createNotifier([{ kind: 'slack', url: rx.url }]);
      const req = request({ operation: { kind: 'sql', display: "DELETE FROM t WHERE a < 3 AND note = '```'", digest: 'c'.repeat(64) } });
      n.notify(req, 'created');
      await n.idle();
      expect(rx.got).toHaveLength(1);
      expect(rx.got[0].headers['x-warden-signature']).toBeUndefined();
      const p = JSON.parse(rx.got[0].body);
      expect(Object.keys(p).sort()).toEqual(['blocks', 'text']);
      expect(p.text).toBe('Approval needed: SQL on orders-db (rule deletes-need-approval, requested by system:serviceaccount:shop:agent)');
      expect(p.blocks.every((b: { type: string }) => b.type === 'section')).toBe(true);
      const all = JSON.stringify(p.blocks);
      const fields = p.blocks[1].fields.map((f: { text: string }) => f.text).join('\n');
      expect(fields).toContain('*Rule:*\n`deletes-need-approval`');
      expect(fields).toContain('*Target:*\n`orders-db`');
      expect(fields).toContain('*Requester:*\nsystem:serviceaccount:shop:agent (agents)');
      expect(fields).toContain('*Expires:*\n2030-01-01T00:10:00.000Z');
      const op: string = p.blocks[2].text.text;
      // mrkdwn-escaped, in one code block that the operation's own ``` cannot close
      expect(op).toMatch(/^\*Operation\* \(sql, digest cccccccccccc…\):\n```DELETE FROM t WHERE a &lt; 3 AND note = '``\u200b`'```$/);
      expect(op.match(/```/g)).toHaveLength(2);
      expect(p.blocks[3].text.text).toBe(`Approve: \`warden approve ${req.id}\`\nDeny: \`warden deny ${req.id} --reason "..."\``);
      expect(all.length).toBeLessThan(10_000);
    } finally {
      await rx.close();
    }
  });

  test('spoofing (issue 10 §6): control, bidi and invisible characters reach neither receiver raw, parsed or not', async () => {
    const RAW_HIDDEN = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200c-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;
    const rx = await receiver(answer(200));
    try {
      const n = createNotifier([
        { kind: 'webhook', url: rx.url },
        { kind: 'slack', url: rx.url },
      ]);
      // A display built without the data path's escaping (the notifier escapes again), and a requester and reason with hidden characters.
      const req = request({
        requester: { subject: 'agent\u202e', groups: [] },
        operation: { kind: 'sql', display: 'DELETE FROM t WHERE id > 0 /*\u202e 3 = di EREHW \x1b[2K\r*/', digest: 'c'.repeat(64) },
        state: 'denied',
        decisions: [{ by: 'alice', groups: [], verdict: 'deny', reason: 'no\u2066', at: '2030-01-01T00:01:00.000Z' }],
        finalReason: 'denied by alice: no\u2066',
      });
      n.notify(req, 'decided');
      await n.idle();
      expect(rx.got).toHaveLength(2);
      for (const got of rx.got) {
        expect(got.body).not.toMatch(RAW_HIDDEN);
        expect(
          JSON.stringify(JSON.parse(got.body), (_k, v: unknown) => (typeof v === 'string' ? v.replace(/\u200b/g, '') : v)),
        ).not.toMatch(RAW_HIDDEN);
      }
      const webhook = JSON.parse(rx.got.find((g) => !g.body.includes('"blocks"'))!.body) as { approval: ApprovalRequest };
      expect(webhook.approval.operation.display).toBe('DELETE FROM t WHERE id > 0 /*\\u202e 3 = di EREHW \\x1b[2K\\r\n*/');
      expect(webhook.approval.operation.digest).toBe('c'.repeat(64));
      expect(webhook.approval.requester.subject).toBe('agent\\u202e');
      expect(webhook.approval.finalReason).toBe('denied by alice: no\\u2066');
      const slack = rx.got.find((g) => g.body.includes('"blocks"'))!.body;
      expect(slack).toContain('WHERE id &gt; 0 /*\\\\u202e 3 = di EREHW');
    } finally {
      await rx.close();
    }
  });

  test('Slack: huge operation stays within the 3000-character section limit; decided shows decisions, no commands', async () => {
    const rx = await receiver(answer(200));
    try {
      const n = createNotifier([{ kind: 'slack', url: rx.url }]);
      n.notify(
        request({
          operation: { kind: 'http', display: 'POST https://api.example.com/x\n\n' + 'x'.repeat(20_000), digest: 'd'.repeat(64) },
          state: 'denied',
          decisions: [{ by: 'alice', groups: ['sre'], verdict: 'deny', reason: 'not <now>', at: '2030-01-01T00:01:00.000Z' }],
          finalReason: 'denied by alice',
        }),
        'decided',
      );
      await n.idle();
      const p = JSON.parse(rx.got[0].body);
      expect(p.text).toMatch(/^Approval denied: HTTP on orders-db/);
      const op: string = p.blocks[2].text.text;
      expect(op.length).toBeLessThanOrEqual(3000);
      expect(op.endsWith('```')).toBe(true);
      expect(op).toContain('… (truncated');
      expect(JSON.stringify(p)).not.toContain('warden approve');
      expect(p.blocks[3].text.text).toBe('• alice denied: not &lt;now&gt;\ndenied by alice');
    } finally {
      await rx.close();
    }
  });

  test('wired as the gate onCreated hook, a hanging receiver never delays the hold', async () => {
    const rx = await receiver(() => undefined);
    const store = new LocalApprovalStore();
    try {
      const n = createNotifier([{ kind: 'webhook', url: rx.url }], { timeoutMs: 300, retries: 0 });
      const created: ApprovalRequest[] = [];
      const gate = createApprovalGate(store, {
        onCreated: (r) => {
          created.push(r);
          n.notify(r, 'created');
        },
      });
      const t0 = Date.now();
      const p = gate.hold({
        target: 't',
        policy: 'p',
        rule: 'r',
        decision: { action: 'hold', rule: 'r', reason: 'held', approval: { approvers: { groups: ['sre'] }, timeout: '10m' } },
        identity: { subject: 'agent', groups: [], source: 'pod' },
        operation: { sql: 'DELETE FROM x' },
        signal: new AbortController().signal,
      });
      while (created.length === 0) await new Promise((r) => setTimeout(r, 1));
      await store.decide(created[0].id, { subject: 'alice', groups: ['sre'], source: 'token' }, 'approve', 'ok');
      await expect(p).resolves.toMatchObject({ approved: true });
      expect(Date.now() - t0).toBeLessThan(200); // decided well before the receiver's 300 ms timeout
      await n.idle();
      expect(rx.got).toHaveLength(1);
    } finally {
      store.close();
      await rx.close();
    }
  });
});
