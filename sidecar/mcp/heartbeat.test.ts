import { createSseParser } from '../../common/masking/stream/sse-parser';
import { heartbeat, progressTokenOf, sseMessage } from './heartbeat';

describe('progressTokenOf', () => {
  it('reads _meta.progressToken when it is a string or an integer', () => {
    expect(progressTokenOf({ _meta: { progressToken: 'tok' } })).toBe('tok');
    expect(progressTokenOf({ _meta: { progressToken: 3 } })).toBe(3);
    expect(progressTokenOf({ _meta: { progressToken: 1.5 } })).toBeUndefined();
    expect(progressTokenOf({ _meta: { progressToken: null } })).toBeUndefined();
    expect(progressTokenOf({ _meta: [] })).toBeUndefined();
    expect(progressTokenOf({})).toBeUndefined();
    expect(progressTokenOf(undefined)).toBeUndefined();
  });
});

describe('heartbeat', () => {
  it('is a progress notification for the token, as one SSE event', () => {
    const text = heartbeat('tok', 2, 'waiting for approval');
    const blocks = createSseParser().push(Buffer.from(text));
    expect(blocks).toHaveLength(1);
    expect(JSON.parse(blocks[0].data!)).toEqual({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'tok', progress: 2, message: 'Agent Warden: waiting for approval' },
    });
  });

  it('is a comment without a token, on one line whatever the text', () => {
    const text = heartbeat(undefined, 1, 'waiting\r\nevent: message');
    expect(text).toBe(': Agent Warden: waiting  event: message\n\n');
    const blocks = createSseParser().push(Buffer.from(text));
    expect(blocks.every((b) => b.data === null || b.data === '')).toBe(true);
  });

  it('sseMessage frames one JSON-RPC message', () => {
    expect(sseMessage({ jsonrpc: '2.0', id: 1, result: {} })).toBe('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n');
  });
});
