import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuditRecord } from '../common/audit/record';
import { silentLogger } from '../common/log';
import { encodeRecord } from '../sidecar/audit/binary';
import { Spool } from '../sidecar/audit/spool';
import { main } from './main';
import { nearestSessions, summarizeSessions } from './replay';
import { runCli } from './run';
import YAML from 'yaml';

const T0 = Date.UTC(2025, 0, 15, 9, 30, 0);
let n = 0;

function rec(over: Partial<AuditRecord> & Pick<AuditRecord, 'session' | 'seq'>): AuditRecord {
  n += 1;
  return {
    v: 1,
    id: n.toString(16).padStart(32, '0'),
    kind: 'postgres',
    start: T0 + over.seq * 1000,
    durationMs: 4.25,
    trace: { traceId: 'a'.repeat(32), spanId: n.toString(16).padStart(16, '0'), flags: 1 },
    policy: 'agents/support-agent',
    target: 'crm',
    decision: 'allow',
    reason: 'no rule matched; defaultAction allow',
    identity: { subject: 'system:serviceaccount:agents:support', groups: ['agents'] },
    masked: 0,
    ...over,
  };
}

const pg = 'pg-7f3a9c';
const web = 'http-41b2';
const records: AuditRecord[] = [
  // Written out of session order: replay sorts by the record's seq.
  rec({
    session: pg,
    seq: 2,
    db: { system: 'postgresql', text: 'SELECT name, card FROM customers', operations: ['SELECT'], protocol: 'simple', rows: 2 },
    decision: 'mask',
    masked: 2,
    maskedBy: { column: 1, 'credit-card': 1 },
    payload: { response: 'alice | ************1111' },
  }),
  rec({
    session: pg,
    seq: 1,
    db: { system: 'postgresql', text: 'SET search_path = crm', operations: ['SET'], protocol: 'simple', rows: 0 },
  }),
  rec({
    session: pg,
    seq: 3,
    decision: 'allow',
    rule: 'deletes-need-approval',
    reason: 'approved by bob',
    approval: {
      id: 'ar-12',
      approved: true,
      outcome: 'approved',
      reason: 'ticket 4411',
      decidedBy: 'bob@example.com',
      waitStart: T0,
      waitMs: 12_300,
      spanId: 'b'.repeat(16),
    },
    db: {
      system: 'postgresql',
      text: 'DELETE FROM orders WHERE id = $1\x1b[2J',
      operations: ['DELETE'],
      protocol: 'extended',
      rows: 1,
      params: ['42'],
    },
  }),
  rec({
    session: pg,
    seq: 4,
    decision: 'deny',
    rule: 'no-ddl',
    reason: 'DROP is not allowed by rule no-ddl',
    db: { system: 'postgresql', text: 'DROP TABLE customers', operations: ['DROP'], protocol: 'simple', rows: 0 },
  }),
  rec({
    session: web,
    seq: 1,
    start: T0 + 4500,
    kind: 'http',
    target: 'openai',
    trace: { traceId: 'c'.repeat(32), spanId: '1'.repeat(16), flags: 1 },
    http: { method: 'POST', route: 'openai', path: '/v1/chat/completions', status: 200 },
    genAi: {
      provider: 'openai',
      operation: 'chat',
      requestModel: 'gpt-4o',
      responseModel: 'gpt-4o-2024-08-06',
      inputTokens: 120,
      outputTokens: 40,
    },
    payload: { request: '{"messages":[{"content":"card [REDACTED]"}]}', response: '{"choices":[]}', truncated: true },
  }),
];
// The same trace continues in the postgres session's last statement.
records.push(
  rec({
    session: pg,
    seq: 5,
    trace: { traceId: 'c'.repeat(32), spanId: '2'.repeat(16), flags: 1 },
    db: { system: 'postgresql', text: 'SELECT 1', operations: ['SELECT'], protocol: 'simple', rows: 1 },
  }),
);

let dir: string;
let writer: Spool;

function io(): { out: string[]; err: string[]; io: { stdout(s: string): void; stderr(s: string): void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (s) => out.push(s), stderr: (s) => err.push(s) } };
}

async function replay(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = io();
  const code = await runCli(['replay', ...args, '--spool-dir', dir], c.io, { env: {} });
  return { code, stdout: c.out.join(''), stderr: c.err.join('') };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-replay-'));
  // The sidecar keeps running (and holding the lock) while replay reads.
  writer = Spool.open({ dir, maxBytes: 1 << 20, segmentBytes: 1024, whenFull: 'block', log: silentLogger });
  // The first record as a sidecar before the binary format wrote it (JSON): still replayed the same.
  writer.append(JSON.stringify(records[0]));
  writer.append('not json at all');
  for (const r of records.slice(1)) writer.append(encodeRecord(r));
  writer.append(encodeRecord(records[1])); // an export replayed after a crash: same id
  writer.ack(3); // acknowledged records are still shown
});

afterAll(async () => {
  await writer.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('warden replay SESSION', () => {
  it('prints a postgres session in order, with decisions, approvals and masked payloads', async () => {
    const { code, stdout, stderr } = await replay(pg);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const blocks = stdout.split('\n#').slice(1);
    expect(blocks.map((b) => b.split(' ')[0])).toEqual(['1', '2', '3', '4', '5']);
    expect(stdout).toMatch(
      /^session pg-7f3a9c {2}postgres, policy agents\/support-agent\n {2}5 operations, 2025-01-15T09:30:01.000Z \.\. /,
    );
    expect(blocks[1]).toContain('2  2025-01-15T09:30:02.000Z  postgres crm  mask  (4.3 ms)');
    expect(blocks[1]).toContain('    sql       SELECT name, card FROM customers');
    expect(blocks[1]).toContain('    result    2 rows, 2 values masked (column 1, credit-card 1)');
    expect(blocks[1]).toContain('    response  alice | ************1111');
    expect(blocks[2]).toContain('    approval  ar-12 approved by bob@example.com after 12.3 s: ticket 4411');
    expect(blocks[2]).toContain('    decision  allow by rule deletes-need-approval: approved by bob');
    expect(blocks[2]).toContain('    params    ["42"]');
    // A terminal escape in recorded text is shown, not executed.
    expect(blocks[2]).toContain('DELETE FROM orders WHERE id = $1\\u001b[2J');
    expect(stdout).not.toContain('\x1b');
    expect(blocks[3]).toContain('    decision  deny by rule no-ddl: DROP is not allowed by rule no-ddl');
    expect(blocks[0]).toContain('    identity  system:serviceaccount:agents:support [groups: agents]');
  });

  it('prints HTTP requests with method, path, status and the LLM call', async () => {
    const { code, stdout } = await replay(web);
    expect(code).toBe(0);
    expect(stdout).toContain('#1  2025-01-15T09:30:04.500Z  http openai  allow');
    expect(stdout).toContain('    http      POST /v1/chat/completions -> 200');
    expect(stdout).toContain('    gen_ai    openai chat gpt-4o -> gpt-4o-2024-08-06, tokens in 120 / out 40');
    expect(stdout).toContain('    request   {"messages":[{"content":"card [REDACTED]"}]}');
    expect(stdout).toContain('    response  {"choices":[]}\n              [truncated]');
  });

  it('selects a trace across sessions, in time order', async () => {
    const { code, stdout } = await replay('c'.repeat(32));
    expect(code).toBe(0);
    expect(stdout.split('\n')[0]).toBe(`trace ${'c'.repeat(32)}  2 sessions`);
    expect(stdout.indexOf('POST /v1/chat/completions')).toBeLessThan(stdout.indexOf('SELECT 1'));
  });

  it('prints the records as one JSON array with -o json (the same in yaml), each record once, hidden characters escaped', async () => {
    const { code, stdout } = await replay(pg, '-o', 'json');
    expect(code).toBe(0);
    expect(stdout).not.toContain('\x1b');
    const want = records.filter((r) => r.session === pg).sort((a, b) => a.seq - b.seq);
    expect(JSON.parse(stdout) as AuditRecord[]).toEqual(want);
    const yaml = await replay(pg, '-o', 'yaml');
    expect(yaml.stdout).not.toContain('\x1b');
    expect((YAML.parse(yaml.stdout) as AuditRecord[]).map((r) => r.id)).toEqual(want.map((r) => r.id));
    // -o text is the older name of the default
    expect((await replay(pg, '-o', 'text')).stdout).toBe((await replay(pg)).stdout);
  });
});

describe('errors', () => {
  it('exits 1 and lists the nearest sessions for an unknown id', async () => {
    const { code, stderr } = await replay('pg-7f3a9d');
    expect(code).toBe(1);
    expect(stderr).toBe(
      `warden replay: no session or trace "pg-7f3a9d" in the audit spool at ${dir}; nearest: ${pg}, ${web} (warden replay --list shows all 2)\n`,
    );
  });

  it('does not take a prefix for an id, but names the session it belongs to', async () => {
    const { code, stdout, stderr } = await replay('pg-7f3a');
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(`nearest: ${pg}, ${web}`);
  });

  it('says where it looked when there is no spool, using WARDEN_SPOOL_DIR', async () => {
    const c = io();
    const code = await runCli(['replay', pg], c.io, { env: { WARDEN_SPOOL_DIR: path.join(dir, 'nope') } });
    expect(code).toBe(1);
    expect(c.err.join('')).toMatch(
      /^warden replay: no audit spool at .*nope \(no such file\); pass --spool-dir DIR or set WARDEN_SPOOL_DIR\n$/,
    );
  });

  it('rejects bad usage with exit 2', async () => {
    expect((await replay()).code).toBe(2);
    expect((await replay(pg, web)).code).toBe(2);
    expect((await replay('--list', pg)).code).toBe(2);
    const bad = await replay(pg, '-o', 'xml');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      "warden replay: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are table, json, yaml, text; see 'warden replay --help'\n",
    );
    expect((await replay('--bogus')).stderr).toBe("warden replay: unknown option '--bogus'; see 'warden replay --help'\n");
  });
});

describe('warden replay --list', () => {
  it('lists sessions with time range, target and counts', async () => {
    const { code, stdout, stderr } = await replay('--list');
    expect(code).toBe(0);
    expect(stderr).toBe('warden replay: skipped 1 spool record that is not an audit record\n');
    const [header, first, second] = stdout.trimEnd().split('\n');
    expect(header.split(/\s+/)).toEqual(['SESSION', 'KIND', 'TARGET', 'FIRST', 'LAST', 'OPS', 'DENIED', 'HELD', 'SUBJECT']);
    expect(first.split(/\s+/)).toEqual([
      pg,
      'postgres',
      'crm',
      '2025-01-15T09:30:01.000Z',
      '2025-01-15T09:30:05.004Z',
      '5',
      '1',
      '1',
      'system:serviceaccount:agents:support',
    ]);
    expect(second.split(/\s+/).slice(0, 3)).toEqual([web, 'http', 'openai']);
  });

  it('prints the sessions as one JSON array with -o json, and the same in yaml', async () => {
    const { stdout } = await replay('--list', '-o', 'json');
    const sessions = JSON.parse(stdout) as unknown[];
    expect(YAML.parse((await replay('--list', '-o', 'yaml')).stdout)).toEqual(sessions);
    expect(sessions).toEqual([
      {
        session: pg,
        kind: 'postgres',
        targets: ['crm'],
        subject: 'system:serviceaccount:agents:support',
        first: T0 + 1000,
        last: T0 + 5000 + 4.25,
        operations: 5,
        denied: 1,
        held: 1,
      },
      expect.objectContaining({ session: web, operations: 1 }),
    ]);
  });
});

describe('pure helpers', () => {
  it('ranks a pasted prefix and a typo above unrelated ids', () => {
    const sessions = summarizeSessions(
      ['abc123', 'zzz999', 'abd124'].map((session, i) => ({ spoolSeq: i, record: rec({ session, seq: 1 }) })),
    );
    expect(nearestSessions('abc1', sessions)).toEqual(['abc123', 'abd124', 'zzz999']);
    expect(nearestSessions('abd123', sessions, 2)).toEqual(['abc123', 'abd124']);
  });
});

it('is registered as `warden replay`', async () => {
  const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    expect(await main(['replay', '--help'])).toBe(0);
    expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('warden replay --list');
  } finally {
    write.mockRestore();
  }
});
