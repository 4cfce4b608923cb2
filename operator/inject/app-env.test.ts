import { parse } from 'pg-connection-string';
import type { AccessPolicy, TargetSpec } from '../../common/policy/types';
import { API_KEY_PLACEHOLDER, appEnv, applyEnv, mcpUrl, postgresUrl, proxyEnvConflict, routeUrl, targetEnv } from './app-env';
import type { Container } from './k8s-types';

const http = (name: string, baseUrl: string, env?: string): TargetSpec => ({ name, http: { baseUrl }, env });

describe('target URLs', () => {
  it('the postgres URL is one a pg client uses as is: loopback, listen port, database, no TLS, no password', () => {
    const url = postgresUrl(15432, 'crm');
    expect(url).toBe('postgresql://agent@127.0.0.1:15432/crm?sslmode=disable');
    expect(parse(url)).toMatchObject({ host: '127.0.0.1', port: '15432', database: 'crm', user: 'agent', ssl: false });
    expect(parse(url).password || undefined).toBeUndefined();
  });

  it('database names with URL-special characters are percent-encoded, as libpq decodes them', () => {
    expect(postgresUrl(15432, 'sales eu?')).toBe('postgresql://agent@127.0.0.1:15432/sales%20eu%3F?sslmode=disable');
    expect(parse(postgresUrl(15432, 'sales eu')).database).toBe('sales eu');
  });

  it('http targets are sidecar routes; OPENAI_BASE_URL gets /v1 unless the baseUrl already ends in it', () => {
    expect(routeUrl(http('tickets', 'https://tickets.example.com/api', 'TICKETS_URL'))).toBe('http://127.0.0.1:15001/tickets');
    expect(routeUrl(http('openai', 'https://api.openai.com', 'OPENAI_BASE_URL'))).toBe('http://127.0.0.1:15001/openai/v1');
    expect(routeUrl(http('openai', 'https://api.openai.com/v1', 'OPENAI_BASE_URL'))).toBe('http://127.0.0.1:15001/openai');
    expect(routeUrl(http('claude', 'https://api.anthropic.com', 'ANTHROPIC_BASE_URL'))).toBe('http://127.0.0.1:15001/claude');
  });
});

describe('mcp targets', () => {
  it('the env is the MCP endpoint on the sidecar, whatever the server url; no API-key placeholder', () => {
    const mcp: TargetSpec = { name: 'crm-tools', mcp: { url: 'https://tools.internal/mcp/v1' }, env: 'CRM_TOOLS_MCP_URL' };
    expect(mcpUrl(mcp)).toBe('http://127.0.0.1:15001/crm-tools');
    const policy: AccessPolicy = {
      apiVersion: 'agentwarden.io/v1alpha1',
      kind: 'AccessPolicy',
      metadata: { name: 'p' },
      spec: { targets: [mcp] },
    };
    expect(targetEnv(policy)).toEqual([
      { target: 'crm-tools', kind: 'mcp', name: 'CRM_TOOLS_MCP_URL', value: 'http://127.0.0.1:15001/crm-tools' },
    ]);
    expect(appEnv(policy).map((e) => e.name)).toEqual([
      'CRM_TOOLS_MCP_URL',
      'HTTP_PROXY',
      'HTTPS_PROXY',
      'http_proxy',
      'https_proxy',
      'NO_PROXY',
      'no_proxy',
    ]);
  });
});

describe('appEnv', () => {
  const policy = (targets: TargetSpec[]): AccessPolicy => ({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: { targets },
  });

  it('target env first, then placeholder keys, then proxy variables', () => {
    const env = appEnv(
      policy([
        http('openai', 'https://api.openai.com', 'OPENAI_BASE_URL'),
        http('anthropic', 'https://api.anthropic.com', 'ANTHROPIC_BASE_URL'),
        http('quiet', 'https://x.example'),
      ]),
    );
    expect(env.map((e) => e.name)).toEqual([
      'OPENAI_BASE_URL',
      'ANTHROPIC_BASE_URL',
      'OPENAI_API_KEY',
      'ANTHROPIC_API_KEY',
      'HTTP_PROXY',
      'HTTPS_PROXY',
      'http_proxy',
      'https_proxy',
      'NO_PROXY',
      'no_proxy',
    ]);
    expect(env.find((e) => e.name === 'ANTHROPIC_API_KEY')?.value).toBe(API_KEY_PLACEHOLDER);
  });

  it('a target whose env is itself a proxy variable is not set twice', () => {
    const names = appEnv(policy([http('egress', 'https://x.example', 'HTTPS_PROXY')])).map((e) => e.name);
    expect(names.filter((n) => n === 'HTTPS_PROXY')).toHaveLength(1);
  });

  // curl and Python read https_proxy first, Go HTTPS_PROXY: a pair with two values sends clients
  // to different places depending on their language.
  it.each([
    ['HTTPS_PROXY', 'https_proxy'],
    ['https_proxy', 'HTTPS_PROXY'],
    ['HTTP_PROXY', 'http_proxy'],
    ['http_proxy', 'HTTP_PROXY'],
    ['NO_PROXY', 'no_proxy'],
    ['no_proxy', 'NO_PROXY'],
  ])('a target claiming %s sets %s to the same value', (claimed, other) => {
    const env = appEnv(policy([http('egress', 'https://x.example', claimed)]));
    const value = (n: string): string | undefined => env.find((e) => e.name === n)?.value;
    expect(value(claimed)).toBe('http://127.0.0.1:15001/egress');
    expect(value(other)).toBe(value(claimed));
    expect(env.filter((e) => e.name === other)).toHaveLength(1);
  });

  it('both spellings of every proxy variable agree in the default env', () => {
    const env = new Map(appEnv(policy([])).map((e) => [e.name, e.value]));
    for (const [upper, lower] of [
      ['HTTP_PROXY', 'http_proxy'],
      ['HTTPS_PROXY', 'https_proxy'],
      ['NO_PROXY', 'no_proxy'],
    ]) {
      expect(env.get(upper)).toBeDefined();
      expect(env.get(lower)).toBe(env.get(upper));
    }
  });

  it('two targets claiming the two spellings of one variable are a conflict, named', () => {
    const p = policy([http('a', 'https://a.example', 'HTTPS_PROXY'), http('b', 'https://b.example', 'https_proxy')]);
    expect(proxyEnvConflict(p)).toMatch(/targets "a" and "b" set env HTTPS_PROXY and https_proxy/);
    expect(proxyEnvConflict(policy([http('a', 'https://a.example', 'HTTPS_PROXY')]))).toBeUndefined();
  });
});

describe('applyEnv', () => {
  it('replaces in place (dropping secretKeyRef), prepends new names, keeps the rest, reports what it replaced', () => {
    const c: Container = {
      name: 'agent',
      env: [
        { name: 'LOG_LEVEL', value: 'debug' },
        { name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'openai', key: 'token' } } },
        { name: 'HTTPS_PROXY', value: 'http://127.0.0.1:15001' },
      ],
    };
    const replaced = applyEnv(c, [
      { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/openai/v1' },
      { name: 'OPENAI_API_KEY', value: API_KEY_PLACEHOLDER },
      { name: 'HTTPS_PROXY', value: 'http://127.0.0.1:15001' },
    ]);
    expect(c.env).toEqual([
      { name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:15001/openai/v1' },
      { name: 'LOG_LEVEL', value: 'debug' },
      { name: 'OPENAI_API_KEY', value: API_KEY_PLACEHOLDER },
      { name: 'HTTPS_PROXY', value: 'http://127.0.0.1:15001' },
    ]);
    expect(replaced).toEqual(['OPENAI_API_KEY']); // HTTPS_PROXY already had our value
  });

  it('replaces every definition of an injected name: a second DATABASE_URL would otherwise win in the container', () => {
    const c: Container = {
      name: 'agent',
      env: [
        { name: 'DATABASE_URL', value: 'postgresql://placeholder' },
        { name: 'LOG_LEVEL', value: 'debug' },
        { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'crm-db', key: 'url' } } },
      ],
    };
    const replaced = applyEnv(c, [{ name: 'DATABASE_URL', value: 'postgresql://agent@127.0.0.1:15432/crm' }]);
    expect(c.env).toEqual([
      { name: 'DATABASE_URL', value: 'postgresql://agent@127.0.0.1:15432/crm' },
      { name: 'LOG_LEVEL', value: 'debug' },
    ]);
    expect(c.env?.some((e) => e.valueFrom !== undefined)).toBe(false);
    expect(replaced).toEqual(['DATABASE_URL']);
  });
});
