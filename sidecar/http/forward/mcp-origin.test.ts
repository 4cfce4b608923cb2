import { compileSpec } from '../../../test/support/mcp/mcp-proxy';
import { HttpError } from '../errors';
import type { ForwardExchange } from './exchange';
import { mcpOriginStage } from './mcp-origin';

const policy = compileSpec({
  defaultAction: 'allow',
  targets: [
    { name: 'crm', mcp: { url: 'https://Tools.Internal/mcp' } },
    { name: 'local', mcp: { url: 'http://[::1]:8080/mcp' } },
  ],
});

function run(host: string, port: number, method = 'CONNECT'): ForwardExchange {
  const ex = {
    policy,
    op: { type: 'http', target: '', method, path: '', host, port, headers: {} },
    decision: undefined,
  } as unknown as ForwardExchange;
  void mcpOriginStage.run(ex); // synchronous: throws or returns undefined
  return ex;
}

describe('mcpOriginStage', () => {
  it.each([
    ['a CONNECT tunnel', 'tools.internal', 443, 'CONNECT'],
    ['an absolute-form request, host in another case', 'TOOLS.internal', 443, 'POST'],
    ['an IPv6 origin', '[::1]', 8080, 'POST'],
  ])('denies %s to an MCP server origin, naming the route', (_what, host, port, method) => {
    expect(() => run(host, port, method)).toThrow(HttpError);
    try {
      run(host, port, method);
    } catch (e) {
      expect((e as HttpError).status).toBe(403);
      expect((e as HttpError).message).toMatch(/use its route http:\/\/127\.0\.0\.1:15001\/(crm|local)/);
    }
  });

  it('passes other origins and other ports', () => {
    expect(run('tools.internal', 80).decision).toBeUndefined();
    expect(run('example.com', 443).decision).toBeUndefined();
  });
});
