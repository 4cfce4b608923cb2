// The policy engine is pure: operations and identities in, decisions out.
import { compilePolicy, globToRegExp } from './compile';
import { decide, decideResponse, responseRulesFor, UNPARSEABLE_BODY } from './engine';
import type { AccessPolicy, Identity, SqlOperation, SqlStatementInfo } from './types';
import { SQL_KINDS } from '../../sidecar/postgres/classify/kinds';
import { STATEMENT_CLASS_NAMES } from './statement-classes';
import { loadCrdSchema } from './schema';

const who: Identity = { subject: 'system:serviceaccount:agents:worker', groups: ['workers'], source: 'pod' };

function policy(spec: Partial<AccessPolicy['spec']>): ReturnType<typeof compilePolicy> {
  return compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: { targets: [{ name: 'crm', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432 } }], ...spec },
  });
}

function stmt(kind: string, extra: Partial<SqlStatementInfo> = {}): SqlStatementInfo {
  return { kind, kinds: [kind], tables: [], functions: [], columns: [], ...extra };
}

function sql(...statements: SqlStatementInfo[]): SqlOperation {
  return { type: 'sql', target: 'crm', statements };
}

test('first matching rule wins; no match falls to the default, which is deny when unset', () => {
  const p = policy({
    rules: [
      { name: 'allow-reports', action: 'allow', match: { sql: { tables: ['reports'] } } },
      { name: 'no-drop', action: 'deny', match: { sql: { statements: ['DROP'] } } },
    ],
  });
  expect(decide(p, sql(stmt('DROP', { tables: ['reports'] })), who)).toMatchObject({ action: 'allow', rule: 'allow-reports' });
  expect(decide(p, sql(stmt('DROP', { tables: ['x'] })), who)).toMatchObject({ action: 'deny', rule: 'no-drop' });
  const fallback = decide(p, sql(stmt('SELECT')), who);
  expect(fallback.action).toBe('deny');
  expect(fallback.rule).toBeUndefined();
});

test('a multi-statement operation takes the strictest outcome', () => {
  const p = policy({
    defaultAction: 'allow',
    rules: [
      { name: 'hold-deletes', action: 'hold', approval: { approvers: { groups: ['sre'] } }, match: { sql: { statements: ['DELETE'] } } },
      { name: 'no-drop', action: 'deny', match: { sql: { statements: ['DROP'] } } },
    ],
  });
  expect(decide(p, sql(stmt('SELECT'), stmt('DELETE')), who)).toMatchObject({ action: 'hold', rule: 'hold-deletes' });
  expect(decide(p, sql(stmt('DELETE'), stmt('DROP'), stmt('SELECT')), who)).toMatchObject({ action: 'deny', rule: 'no-drop' });
});

test('criteria combine with AND, values with OR; rules can be limited to subjects and groups', () => {
  const p = policy({
    defaultAction: 'allow',
    rules: [
      { name: 'supervisor-may-delete', action: 'allow', match: { subjects: ['*:supervisor'], sql: { statements: ['DELETE'] } } },
      {
        name: 'workers-no-delete-orders',
        action: 'deny',
        match: { groups: ['workers'], sql: { statements: ['DELETE', 'UPDATE'], tables: ['orders'] } },
      },
    ],
  });
  const del = sql(stmt('DELETE', { tables: ['orders'] }));
  expect(decide(p, del, who)).toMatchObject({ action: 'deny', rule: 'workers-no-delete-orders' });
  const other = decide(p, sql(stmt('DELETE', { tables: ['customers'] })), who);
  expect(other.action).toBe('allow');
  expect(other.rule).toBeUndefined();
  expect(decide(p, del, { ...who, subject: 'system:serviceaccount:agents:supervisor' })).toMatchObject({
    action: 'allow',
    rule: 'supervisor-may-delete',
  });
});

test('restrictive rules naming qualified tables and functions also catch the bare names; allow rules stay exact', () => {
  const p = policy({
    defaultAction: 'allow',
    rules: [
      { name: 'allow-public-reports', action: 'allow', match: { sql: { tables: ['public.reports'] } } },
      { name: 'no-secrets', action: 'deny', match: { sql: { tables: ['vault.secrets'], functions: ['pg_catalog.pg_read_file'] } } },
      { name: 'no-reports', action: 'deny', match: { sql: { tables: ['reports'] } } },
    ],
  });
  expect(decide(p, sql(stmt('SELECT', { tables: ['secrets'], functions: ['pg_read_file'] })), who)).toMatchObject({
    action: 'deny',
    rule: 'no-secrets',
  });
  expect(decide(p, sql(stmt('SELECT', { tables: ['reports'] })), who)).toMatchObject({ action: 'deny', rule: 'no-reports' });
  expect(decide(p, sql(stmt('SELECT', { tables: ['reports', 'public.reports'] })), who)).toMatchObject({
    action: 'allow',
    rule: 'allow-public-reports',
  });
});

test('unparseable statements are denied whatever defaultAction says, unless the target allows them', () => {
  const op: SqlOperation = { type: 'sql', target: 'crm', statements: [], parseError: 'syntax error at or near "DR"' };
  const target = (unparseable?: 'allow' | 'deny'): Partial<AccessPolicy['spec']> => ({
    targets: [{ name: 'crm', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432, unparseable } }],
  });
  expect(decide(policy({ defaultAction: 'allow' }), op, who)).toMatchObject({
    action: 'deny',
    reason: expect.stringContaining('could not be parsed'),
  });
  expect(decide(policy({ defaultAction: 'deny' }), op, who)).toMatchObject({
    action: 'deny',
    reason: expect.stringContaining('could not be parsed'),
  });
  expect(decide(policy({ defaultAction: 'allow', ...target('deny') }), op, who).action).toBe('deny');
  expect(decide(policy({ defaultAction: 'deny', ...target('allow') }), op, who).action).toBe('allow');
  // A failure of the parser (not a syntax error) is denied even then.
  const failed: SqlOperation = { ...op, parseError: 'the SQL parser failed: memory access out of bounds', parserFailure: true };
  expect(decide(policy({ defaultAction: 'allow', ...target('allow') }), failed, who)).toMatchObject({
    action: 'deny',
    reason: expect.stringContaining('could not be classified'),
  });
});

test('the CRD lists exactly the statement kinds the classifier produces, and the statement classes', () => {
  const schema = loadCrdSchema() as Record<string, any>;
  const spec = schema.properties.spec.properties;
  const items = spec.rules.items.properties.match.properties.sql.properties.statements.items;
  expect([...items.enum].sort()).toEqual([...SQL_KINDS, ...STATEMENT_CLASS_NAMES].sort());
});

test('HTTP rules match on method, path and JSON body fields (tool names, model)', () => {
  const p = policy({
    defaultAction: 'allow',
    targets: [{ name: 'openai', http: { baseUrl: 'https://api.openai.com' } }],
    rules: [
      {
        name: 'no-shell-tool',
        action: 'deny',
        match: {
          target: 'openai',
          http: { methods: ['POST'], paths: ['/v1/chat/**'], json: [{ path: '$.tools[*].function.name', values: ['run_shell'] }] },
        },
      },
      { name: 'no-gpt4', action: 'deny', match: { target: 'openai', http: { json: [{ path: '$.model', values: ['gpt-4'] }] } } },
    ],
  });
  const op = (json: unknown, path = '/v1/chat/completions', method = 'POST') => ({
    type: 'http' as const,
    target: 'openai',
    method,
    path,
    headers: {},
    json,
  });
  expect(
    decide(p, op({ model: 'gpt-4o-mini', tools: [{ function: { name: 'search' } }, { function: { name: 'run_shell' } }] }), who),
  ).toMatchObject({ action: 'deny', rule: 'no-shell-tool' });
  expect(decide(p, op({ model: 'gpt-4o-mini', tools: [{ function: { name: 'search' } }] }), who).action).toBe('allow');
  expect(decide(p, op({ model: 'gpt-4' }, '/v1/embeddings'), who)).toMatchObject({ action: 'deny', rule: 'no-gpt4' });
  expect(decide(p, op(undefined, '/v1/models', 'GET'), who).action).toBe('allow');
  // A body that claimed JSON but does not parse cannot be checked: deny rules match (fail closed).
  expect(decide(p, op(UNPARSEABLE_BODY), who)).toMatchObject({ action: 'deny', rule: 'no-shell-tool' });
});

test('path globs: * stays within a segment, ** spans segments and /x/** covers /x itself', () => {
  const re = (g: string): RegExp => globToRegExp(g, '/');
  expect(re('/v1/refunds/**').test('/v1/refunds')).toBe(true);
  expect(re('/v1/refunds/**').test('/v1/refunds/re_1/cancel')).toBe(true);
  expect(re('/v1/refunds/**').test('/v1/refundsX')).toBe(false);
  expect(re('/v1/*/items').test('/v1/a/items')).toBe(true);
  expect(re('/v1/*/items').test('/v1/a/b/items')).toBe(false);
  expect(re('/a/**/z').test('/a/z')).toBe(true);
  expect(re('/a/**/z').test('/a/b/c/z')).toBe(true);
});

describe('response rules (match.http.response)', () => {
  const p = policy({
    defaultAction: 'allow',
    targets: [
      { name: 'openai', http: { baseUrl: 'https://api.openai.com' } },
      { name: 'other', http: { baseUrl: 'https://other.example.com' } },
    ],
    rules: [
      { name: 'allow-all-openai', action: 'allow', match: { target: 'openai' } },
      {
        name: 'no-db-deletes',
        action: 'deny',
        message: 'the model may not call delete_database',
        match: {
          target: 'openai',
          http: {
            methods: ['POST'],
            paths: ['/v1/**'],
            response: { json: [{ path: '$..tool_calls[*].function.name', values: ['delete_database'] }] },
          },
        },
      },
      {
        name: 'workers-no-tools-on-gpt4',
        action: 'deny',
        match: {
          groups: ['workers'],
          http: {
            json: [{ path: '$.model', values: ['gpt-4'] }],
            response: { json: [{ path: '$.content[*].name' }, { path: '$.model', values: ['gpt-4'] }] },
          },
        },
      },
    ],
  });
  const op = (json: unknown, target = 'openai', path = '/v1/chat/completions', method = 'POST') => ({
    type: 'http' as const,
    target,
    method,
    path,
    headers: {},
    json,
  });
  const toolCall = (name: string) => ({
    choices: [
      { index: 0, message: { role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name, arguments: '{}' } }] } },
    ],
  });
  const delta = (name: string) => ({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { name } }] } }] });

  test('the request-phase decision skips response rules, even when they would be the only match', () => {
    const d = decide(p, op({ model: 'gpt-4' }, 'other'), who);
    expect(d.action).toBe('allow');
    expect(d.rule).toBeUndefined();
    expect(decide(p, op({ model: 'gpt-4' }), who)).toMatchObject({ action: 'allow', rule: 'allow-all-openai' });
  });

  test('first deny rule whose request and response criteria match; independent of the rule that allowed the request', () => {
    expect(decideResponse(p, op({ model: 'm' }), who, toolCall('delete_database'))).toEqual({
      action: 'deny',
      rule: 'no-db-deletes',
      reason: 'the model may not call delete_database',
    });
    // $..tool_calls also reaches streamed deltas
    expect(decideResponse(p, op({ model: 'm' }), who, delta('delete_database'))).toMatchObject({ rule: 'no-db-deletes' });
    expect(decideResponse(p, op({ model: 'm' }), who, toolCall('get_weather'))).toBeUndefined();
    expect(decideResponse(p, op({ model: 'm' }), who, { choices: [{ message: { content: 'delete_database' } }] })).toBeUndefined();
    expect(decideResponse(p, op({ model: 'm' }), who, undefined)).toBeUndefined();
  });

  test('request criteria still apply: method, path, target', () => {
    expect(decideResponse(p, op({}, 'openai', '/v1/chat/completions', 'GET'), who, toolCall('delete_database'))).toBeUndefined();
    expect(decideResponse(p, op({}, 'other'), who, toolCall('delete_database'))).toBeUndefined();
    expect(responseRulesFor(p, op({}, 'other'), who)).toEqual([]);
    expect(responseRulesFor(p, op({}), who).map((r) => r.name)).toEqual(['no-db-deletes']);
  });

  test('request JSON, identity and every response criterion must match (AND)', () => {
    const anthropic = { model: 'gpt-4', content: [{ type: 'tool_use', name: 'anything' }] };
    expect(decideResponse(p, op({ model: 'gpt-4' }, 'other'), who, anthropic)).toMatchObject({
      action: 'deny',
      rule: 'workers-no-tools-on-gpt4',
      reason: 'response denied by rule "workers-no-tools-on-gpt4"',
    });
    expect(decideResponse(p, op({ model: 'gpt-4o' }, 'other'), who, anthropic)).toBeUndefined();
    expect(decideResponse(p, op({ model: 'gpt-4' }, 'other'), { ...who, groups: ['others'] }, anthropic)).toBeUndefined();
    expect(
      decideResponse(p, op({ model: 'gpt-4' }, 'other'), who, { ...anthropic, content: [{ type: 'text', text: 'hi' }] }),
    ).toBeUndefined();
    expect(decideResponse(p, op({ model: 'gpt-4' }, 'other'), who, { ...anthropic, model: 'gpt-4o' })).toBeUndefined();
  });
});

test('MCP JSON-RPC calls are matched by method and tool name', () => {
  const p = policy({
    defaultAction: 'allow',
    targets: [{ name: 'github-mcp', http: { baseUrl: 'https://mcp.example.com' } }],
    rules: [
      {
        name: 'no-repo-deletion',
        action: 'deny',
        match: {
          target: 'github-mcp',
          http: {
            methods: ['POST'],
            json: [
              { path: '$.method', values: ['tools/call'] },
              { path: '$.params.name', values: ['delete_repository'] },
            ],
          },
        },
      },
    ],
  });
  const call = (name: string) => ({
    type: 'http' as const,
    target: 'github-mcp',
    method: 'POST',
    path: '/mcp',
    headers: {},
    json: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: {} } },
  });
  expect(decide(p, call('delete_repository'), who)).toMatchObject({ action: 'deny', rule: 'no-repo-deletion' });
  expect(decide(p, call('list_issues'), who).action).toBe('allow');
  const list = { ...call('x'), json: { jsonrpc: '2.0', id: 8, method: 'tools/list' } };
  expect(decide(p, list, who).action).toBe('allow');
});

test('a restrictive schema.* rule does not widen to every unqualified name; subject wildcards cross dots', () => {
  const p = policy({
    defaultAction: 'allow',
    rules: [
      { name: 'no-audit-schema', action: 'deny', match: { sql: { tables: ['audit.*'] } } },
      { name: 'no-contractors', action: 'deny', match: { subjects: ['*@contractors.example.com'], sql: { statements: ['SELECT'] } } },
    ],
  });
  expect(decide(p, sql(stmt('SELECT', { tables: ['customers'] })), who).action).toBe('allow');
  expect(decide(p, sql(stmt('SELECT', { tables: ['audit.log', 'log'] })), who)).toMatchObject({ action: 'deny', rule: 'no-audit-schema' });
  expect(decide(p, sql(stmt('SELECT')), { ...who, subject: 'jane.doe@contractors.example.com' })).toMatchObject({
    action: 'deny',
    rule: 'no-contractors',
  });
});

test('decisions are built once per rule and shared', () => {
  const p = policy({ rules: [{ name: 'no-drop', action: 'deny', match: { sql: { statements: ['DROP'] } } }] });
  const a = decide(p, sql(stmt('DROP')), who);
  const b = decide(p, sql(stmt('DROP')), who);
  expect(a).toBe(b);
  expect(Object.isFrozen(a)).toBe(true);
  expect(decide(p, sql(stmt('SELECT')), who)).toBe(p.defaultDecision);
});

test('a body too deep to search matches restrictive body rules (fail closed), never throws', () => {
  const p = policy({
    defaultAction: 'allow',
    targets: [{ name: 'api', http: { baseUrl: 'https://api.example.com' } }],
    rules: [{ name: 'no-shell', action: 'deny', match: { target: 'api', http: { json: [{ path: '$..name', values: ['run_shell'] }] } } }],
  });
  let deep: unknown = { name: 'ok' };
  for (let i = 0; i < 1000; i++) deep = { next: deep };
  expect(decide(p, { type: 'http', target: 'api', method: 'POST', path: '/', headers: {}, json: deep }, who)).toMatchObject({
    action: 'deny',
    rule: 'no-shell',
  });
});
