import { endToEndHeaders, endToEndRawHeaders } from './headers';

describe('the one hop-by-hop filter (named routes and forward proxy)', () => {
  const raw = [
    'Host',
    'h',
    'Connection',
    'keep-alive, X-Hop',
    'X-Hop',
    '1',
    'Proxy-Foo',
    '1',
    'Proxy-Authorization',
    'Bearer t',
    'Trailer',
    'X-T',
    'TE',
    'trailers',
    'X-Keep',
    'a',
    'x-keep',
    'b',
    'Keep-Alive',
    'timeout=5',
  ];

  it('raw headers (forward proxy): drops hop-by-hop, Connection-named, proxy-* and trailer; keeps repeats', () => {
    expect(endToEndRawHeaders(raw)).toEqual({ 'x-keep': ['a', 'b'] });
  });

  it('parsed headers (named routes): the same, plus the caller-given extra names', () => {
    const parsed = {
      host: 'h',
      connection: 'keep-alive, X-Hop',
      'x-hop': '1',
      'proxy-foo': '1',
      trailer: 'X-T',
      trailers: 'x',
      'x-keep': 'a',
      authorization: 'Bearer agent',
    };
    expect(endToEndHeaders(parsed, new Set(['authorization']))).toEqual({ 'x-keep': 'a' });
  });

  it('Connection: keep-alive alone (the fast path) and in any case: keep-alive dropped, a Connection: close still names its header', () => {
    for (const connection of ['keep-alive', 'Keep-Alive', 'KEEP-ALIVE']) {
      expect(endToEndHeaders({ connection, 'keep-alive': 'timeout=5', 'x-keep': 'a' })).toEqual({ 'x-keep': 'a' });
    }
    expect(endToEndHeaders({ connection: 'keep-alive-x', 'keep-alive-x': '1', 'x-keep': 'a' })).toEqual({ 'x-keep': 'a' });
    expect(endToEndHeaders({ connection: 'close', close: '1', 'x-keep': 'a' })).toEqual({ 'x-keep': 'a' });
  });
});
