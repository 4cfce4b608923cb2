import { classifyMessage, idKey, toOperation } from './messages';

describe('classifyMessage', () => {
  it('tells requests, notifications and responses apart', () => {
    expect(classifyMessage({ jsonrpc: '2.0', id: 1, method: 'tools/list' })).toEqual({
      kind: 'request',
      id: 1,
      method: 'tools/list',
      params: undefined,
    });
    expect(classifyMessage({ jsonrpc: '2.0', method: 'notifications/initialized' })).toMatchObject({ kind: 'notification' });
    expect(classifyMessage({ jsonrpc: '2.0', id: 'a', result: {} })).toEqual({ kind: 'response', id: 'a' });
    expect(classifyMessage({ jsonrpc: '2.0', id: 'a', error: { code: 1, message: 'x' } })).toEqual({ kind: 'response', id: 'a' });
  });

  it.each([
    ['not an object', [1], /must be an object/],
    ['jsonrpc 1.0', { jsonrpc: '1.0', id: 1, method: 'ping' }, /jsonrpc must be "2.0"/],
    ['no jsonrpc', { id: 1, method: 'ping' }, /jsonrpc must be "2.0"/],
    ['a method that is not a string', { jsonrpc: '2.0', id: 1, method: ['tools/call'] }, /method must be a string/],
    ['an object id', { jsonrpc: '2.0', id: { a: 1 }, method: 'ping' }, /id must be/],
    ['a null request id', { jsonrpc: '2.0', id: null, method: 'ping' }, /id must be/],
    ['params that are an array', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: ['delete_customer'] }, /params must be an object/],
    [
      'a tool name that is not a string',
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: ['delete_customer'] } },
      /params.name/,
    ],
    ['a tools/call without a name', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} }, /params.name/],
    ['a resources/read without a uri', { jsonrpc: '2.0', id: 1, method: 'resources/read', params: {} }, /params.uri/],
    ['a response with result and error', { jsonrpc: '2.0', id: 1, result: {}, error: {} }, /exactly one/],
    ['neither method nor id', { jsonrpc: '2.0', result: {} }, /response with an id/],
  ])('refuses %s', (_what, msg, message) => {
    const m = classifyMessage(msg);
    expect(m.kind).toBe('invalid');
    if (m.kind === 'invalid') expect(m.message).toMatch(message);
  });

  it('keeps the id of an invalid message for its error answer', () => {
    expect(classifyMessage({ jsonrpc: '1.0', id: 7, method: 'ping' })).toMatchObject({ kind: 'invalid', id: 7 });
  });
});

describe('toOperation', () => {
  it('reads the tool, its arguments, the resource', () => {
    const call = classifyMessage({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'run_query', arguments: { database: 'prod' } },
    });
    expect(toOperation('crm', call)).toEqual({
      type: 'mcp',
      target: 'crm',
      method: 'tools/call',
      tool: 'run_query',
      arguments: { database: 'prod' },
    });
    const read = classifyMessage({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///etc/passwd' } });
    expect(toOperation('crm', read)).toEqual({ type: 'mcp', target: 'crm', method: 'resources/read', resource: 'file:///etc/passwd' });
    expect(toOperation('crm', classifyMessage({ jsonrpc: '2.0', id: 1, result: {} }))).toEqual({ type: 'mcp', target: 'crm', method: '' });
    expect(toOperation('crm', classifyMessage({ jsonrpc: '2.0', id: 1 }))).toBeUndefined();
  });

  it('keys ids by type', () => {
    expect(idKey(1)).not.toBe(idKey('1'));
  });
});
