// The policy engine is pure: operations and identities in, decisions out.
import { compilePolicy } from './compile';
import { decide, UNPARSEABLE_BODY } from './engine';
import type { AccessPolicy, Identity, SqlOperation, SqlStatementInfo } from './types';
import { SQL_KINDS } from '../../sidecar/postgres/classify/kinds';
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
      { name: 'workers-no-delete-orders', action: 'deny', match: { groups: ['workers'], sql: { statements: ['DELETE', 'UPDATE'], tables: ['orders'] } } },
    ],
  });
  const del = sql(stmt('DELETE', { tables: ['orders'] }));
  expect(decide(p, del, who)).toMatchObject({ action: 'deny', rule: 'workers-no-delete-orders' });
  const other = decide(p, sql(stmt('DELETE', { tables: ['customers'] })), who);
  expect(other.action).toBe('allow');
  expect(other.rule).toBeUndefined();
  expect(decide(p, del, { ...who, subject: 'system:serviceaccount:agents:supervisor' })).toMatchObject({ action: 'allow', rule: 'supervisor-may-delete' });
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
  expect(decide(p, sql(stmt('SELECT', { tables: ['secrets'], functions: ['pg_read_file'] })), who)).toMatchObject({ action: 'deny', rule: 'no-secrets' });
  expect(decide(p, sql(stmt('SELECT', { tables: ['reports'] })), who)).toMatchObject({ action: 'deny', rule: 'no-reports' });
  expect(decide(p, sql(stmt('SELECT', { tables: ['reports', 'public.reports'] })), who)).toMatchObject({ action: 'allow', rule: 'allow-public-reports' });
});

test('unparseable statements follow the target setting, then the default action', () => {
  const op: SqlOperation = { type: 'sql', target: 'crm', statements: [], parseError: 'syntax error at or near "DR"' };
  expect(decide(policy({ defaultAction: 'allow' }), op, who).action).toBe('allow');
  expect(decide(policy({ defaultAction: 'deny' }), op, who)).toMatchObject({ action: 'deny', reason: expect.stringContaining('could not be parsed') });
});

test('the CRD lists exactly the statement kinds the classifier produces', () => {
  const schema = loadCrdSchema() as Record<string, any>;
  const spec = schema.properties.spec.properties;
  const items = spec.rules.items.properties.match.properties.sql.properties.statements.items;
  expect([...items.enum].sort()).toEqual([...SQL_KINDS].sort());
});

test('HTTP rules match on method, path and JSON body fields (tool names, model)', () => {
  const p = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: {
      defaultAction: 'allow',
      targets: [{ name: 'openai', http: { baseUrl: 'https://api.openai.com' } }],
      rules: [
        { name: 'no-shell-tool', action: 'deny', match: { target: 'openai', http: { methods: ['POST'], paths: ['/v1/chat/**'], json: [{ path: '$.tools[*].function.name', values: ['run_shell'] }] } } },
        { name: 'no-gpt4', action: 'deny', match: { target: 'openai', http: { json: [{ path: '$.model', values: ['gpt-4'] }] } } },
      ],
    },
  });
  const op = (json: unknown, path = '/v1/chat/completions', method = 'POST') => ({ type: 'http' as const, target: 'openai', method, path, headers: {}, json });
  expect(decide(p, op({ model: 'gpt-4o-mini', tools: [{ function: { name: 'search' } }, { function: { name: 'run_shell' } }] }), who)).toMatchObject({ action: 'deny', rule: 'no-shell-tool' });
  expect(decide(p, op({ model: 'gpt-4o-mini', tools: [{ function: { name: 'search' } }] }), who).action).toBe('allow');
  expect(decide(p, op({ model: 'gpt-4' }, '/v1/embeddings'), who)).toMatchObject({ action: 'deny', rule: 'no-gpt4' });
  expect(decide(p, op(undefined, '/v1/models', 'GET'), who).action).toBe('allow');
  // A body that claimed JSON but does not parse cannot be checked: deny rules match (fail closed).
  expect(decide(p, op(UNPARSEABLE_BODY), who)).toMatchObject({ action: 'deny', rule: 'no-shell-tool' });
});
