import type { AuditRecord } from '../../common/audit/record';
import { decodeRecord, encodeRecord, FORMAT_BINARY_V1, RecordFormatError } from './binary';
import { approvalRecord, httpRecord, postgresRecord, type OperationCommon } from './records';
import { startTrace } from './trace-context';

const identity = { subject: 'system:serviceaccount:agents:support', groups: ['system:serviceaccounts', 'agents'], source: 'pod' as const };

function common(over: Partial<OperationCommon> = {}): OperationCommon {
  return {
    session: 's-1',
    seq: 7,
    start: 1736933400123.456,
    durationMs: 0.2125,
    policy: 'agents/p',
    target: 'crm',
    decision: 'allow',
    reason: 'no rule matched',
    identity,
    masked: 0,
    ...over,
  };
}

function roundTrip(r: AuditRecord): AuditRecord {
  const bytes = Buffer.from(encodeRecord(r)); // a copy: the encoder reuses its buffer
  expect(bytes[0]).toBe(FORMAT_BINARY_V1);
  const back = decodeRecord(bytes);
  // Same keys in the same order (replay's -o json prints the record as decoded).
  expect(JSON.stringify(back)).toBe(JSON.stringify(r));
  expect(back).toEqual(JSON.parse(JSON.stringify(r)));
  return back;
}

describe('binary audit records', () => {
  test('a plain PostgreSQL record round-trips key for key', () => {
    roundTrip(
      postgresRecord(common({ upstreamMs: 0.11 }), {
        namespace: 'crm',
        text: 'SELECT 1',
        operations: ['SELECT'],
        protocol: 'simple',
        rows: 1,
      }),
    );
  });

  test('every optional part round-trips: rule, approval, maskedBy, error, params with nulls, payload, non-ASCII text', () => {
    const approval = {
      ...approvalRecord(
        { approved: false, approvalId: 'ap-1', reason: 'no', decidedBy: 'alice@example.com', state: 'denied' } as never,
        performance.now() - 5,
      ),
    };
    const r = postgresRecord(
      common({
        rule: 'deny-writes',
        decision: 'deny',
        approval,
        masked: 3,
        maskedBy: { column: 2, 'credit-card': 1 },
        error: 'ERROR: boom — ünïcödé',
      }),
      {
        namespace: undefined,
        text: `/*traceparent='00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01'*/ UPDATE t SET x = 'é€𝄞' ` + 'y'.repeat(300),
        operations: ['UPDATE', 'SELECT'],
        protocol: 'extended',
        rows: 0,
        params: ['1', null, 'x'.repeat(200)],
      },
      { request: 'req ✓', response: 'x'.repeat(70_000), truncated: true },
    );
    expect(r.trace.parentSpanId).toBeDefined();
    roundTrip(r);
  });

  test('HTTP and egress records round-trip (gen_ai, trace state, tunnel, numbers that are not integers)', () => {
    const trace = startTrace({ traceId: '1'.repeat(32), spanId: '2'.repeat(16), flags: 0, state: 'vendor=x' });
    roundTrip(
      httpRecord(
        'http',
        common({ upstreamMs: 12.5, masked: 1 }),
        trace,
        {
          method: 'POST',
          route: 'openai',
          path: '/v1/chat/completions',
          url: 'https://api.openai.com/v1/chat/completions',
          status: 200,
          serverAddress: 'api.openai.com',
          serverPort: 443,
        },
        {
          genAi: {
            provider: 'openai',
            operation: 'chat',
            requestModel: 'gpt-4o',
            inputTokens: 12,
            finishReasons: ['stop'],
            streamed: true,
          },
          payload: { request: '{"a":1}' },
        },
      ),
    );
    roundTrip(
      httpRecord('egress', common({ seq: 0 }), startTrace(undefined), {
        method: 'CONNECT',
        route: 'example.com',
        path: '',
        status: 200,
        serverAddress: 'example.com',
        serverPort: 443,
        tunnel: true,
      }),
    );
  });

  test('MCP records round-trip (the mcp block after the payload)', () => {
    const http = { method: 'POST', route: 'crm-tools', path: '/', status: 200 };
    roundTrip(
      httpRecord('http', common({ masked: 2 }), startTrace(undefined), http, {
        payload: { request: '{"jsonrpc":"2.0"}', response: '{}' },
        mcp: {
          method: 'tools/call',
          requestId: '7',
          tool: 'search_customers',
          sessionId: 'ab'.repeat(16),
          protocolVersion: '2025-11-25',
          toolError: true,
          pinChanges: [{ tool: 'search_customers', expected: `sha256:${'a'.repeat(64)}`, actual: `sha256:${'b'.repeat(64)}` }],
          batch: 2,
        },
      }),
    );
    roundTrip(httpRecord('http', common(), startTrace(undefined), http, { mcp: { method: '' } }));
  });

  test('a spool written as JSON by an older sidecar still decodes', () => {
    const r = postgresRecord(common(), { text: 'SELECT 2', operations: ['SELECT'], protocol: 'simple', rows: 1 });
    expect(decodeRecord(Buffer.from(JSON.stringify(r)))).toEqual(JSON.parse(JSON.stringify(r)));
  });

  test('anything else is refused with a clear error', () => {
    expect(() => decodeRecord(Buffer.from('garbage'))).toThrow(RecordFormatError);
    expect(() => decodeRecord(Buffer.from('{not json'))).toThrow(/neither binary nor JSON/);
    const r = Buffer.from(encodeRecord(postgresRecord(common(), { text: 'SELECT 3', operations: [], protocol: 'simple', rows: 0 })));
    expect(() => decodeRecord(r.subarray(0, r.length - 3))).toThrow(/ends early/);
    expect(() => decodeRecord(Buffer.alloc(0))).toThrow(RecordFormatError);
  });
});
