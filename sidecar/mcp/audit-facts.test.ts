import { createHash } from 'node:crypto';
import { answerOutcome, auditMcpOf, sessionDigest } from './audit-facts';

describe('auditMcpOf', () => {
  it('names the method, tool, request id, session digest, protocol version and batch', () => {
    const m = auditMcpOf(
      { kind: 'request', id: 7, method: 'tools/call', params: { name: 'search_customers', arguments: { q: 'x' } } },
      { sessionId: 'secret-session', protocolVersion: '2025-11-25', batch: 2 },
    );
    expect(m).toEqual({
      method: 'tools/call',
      requestId: '7',
      tool: 'search_customers',
      sessionId: createHash('sha256').update('secret-session').digest('hex').slice(0, 32),
      protocolVersion: '2025-11-25',
      batch: 2,
    });
    expect(JSON.stringify(m)).not.toContain('secret-session');
  });

  it('reads prompts and resources, and knows responses and notifications', () => {
    expect(auditMcpOf({ kind: 'request', id: 'a', method: 'prompts/get', params: { name: 'summarise' } }, {})).toEqual({
      method: 'prompts/get',
      requestId: 'a',
      prompt: 'summarise',
    });
    expect(auditMcpOf({ kind: 'request', id: 1, method: 'resources/read', params: { uri: 'crm://c/1' } }, {}).resource).toBe('crm://c/1');
    expect(auditMcpOf({ kind: 'response', id: 's-1' }, {})).toEqual({ method: '', requestId: 's-1' });
    expect(auditMcpOf({ kind: 'notification', method: 'notifications/initialized' }, {})).toEqual({ method: 'notifications/initialized' });
    expect(auditMcpOf({ kind: 'invalid', id: null }, {})).toEqual({ method: '' });
  });

  it('cuts what the agent can make long', () => {
    const m = auditMcpOf({ kind: 'request', id: 'i'.repeat(5000), method: 'tools/call', params: { name: 't'.repeat(5000) } }, {});
    expect(m.requestId!.length).toBeLessThan(600);
    expect(m.tool!.length).toBeLessThan(600);
  });
});

describe('answerOutcome', () => {
  it('reads the error code or a tool error', () => {
    expect(answerOutcome({ jsonrpc: '2.0', id: 1, error: { code: -32602, message: 'bad' } })).toEqual({ errorCode: -32602 });
    expect(answerOutcome({ jsonrpc: '2.0', id: 1, error: { message: 'no code' } })).toEqual({ errorCode: 0 });
    expect(answerOutcome({ jsonrpc: '2.0', id: 1, result: { content: [], isError: true } })).toEqual({ toolError: true });
    expect(answerOutcome({ jsonrpc: '2.0', id: 1, result: { content: [], isError: 'yes' } })).toEqual({});
    expect(answerOutcome({ jsonrpc: '2.0', id: 1, result: {} })).toEqual({});
  });
});

describe('sessionDigest', () => {
  it('is 32 hex and stable', () => {
    expect(sessionDigest('abc')).toMatch(/^[0-9a-f]{32}$/);
    expect(sessionDigest('abc')).toBe(sessionDigest('abc'));
    expect(sessionDigest('abc')).not.toBe(sessionDigest('abd'));
  });
});
