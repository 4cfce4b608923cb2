// The engine on MCP messages (issue 13): match.mcp, protocol plumbing, and tools/list visibility.
import { compilePolicy } from './compile';
import { decide, isMcpPlumbing, mcpToolVisible, UNPARSEABLE_BODY } from './engine';
import { MAX_JSON_DEPTH } from './jsonpath';
import type { AccessPolicy, Decision, HttpOperation, Identity, McpOperation, RuleSpec, SqlOperation } from './types';

const who: Identity = { subject: 'system:serviceaccount:agents:worker', groups: ['workers'], source: 'pod' };
const sre: Identity = { subject: 'alice', groups: ['sre'], source: 'token' };

function policy(rules: RuleSpec[], defaultAction: 'allow' | 'deny' = 'deny'): ReturnType<typeof compilePolicy> {
  return compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: {
      defaultAction,
      targets: [
        {
          name: 'crm-tools',
          mcp: { url: 'https://tools.internal/mcp', pins: [{ tool: 'run_query', fingerprint: `sha256:${'a'.repeat(64)}` }] },
        },
        { name: 'wiki', mcp: { url: 'https://wiki.internal/mcp' } },
        { name: 'api', http: { baseUrl: 'https://api.example.com' } },
        { name: 'db', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432 } },
      ],
      rules,
    },
  } satisfies AccessPolicy);
}

function call(tool: string, args?: unknown, target = 'crm-tools'): McpOperation {
  return { type: 'mcp', target, method: 'tools/call', tool, arguments: args };
}

function msg(method: string, target = 'crm-tools'): McpOperation {
  return { type: 'mcp', target, method };
}

/** The action when no rule decided (the default, or plumbing); `rule:NAME` when a rule did. */
function byDefault(d: Decision): string {
  return d.rule === undefined ? d.action : `rule:${d.rule}`;
}

const hold = { approvers: { groups: ['sre'] }, timeout: '10m' };

test('the issue example: deletes denied, prod queries held, the rest by default', () => {
  const p = policy(
    [
      { name: 'no-deletes', action: 'deny', match: { target: 'crm-tools', mcp: { tools: ['delete_*'] } } },
      {
        name: 'prod-needs-approval',
        action: 'hold',
        approval: hold,
        match: { target: 'crm-tools', mcp: { tools: ['run_query'], arguments: [{ path: '$.database', values: ['prod'] }] } },
      },
    ],
    'allow',
  );
  expect(decide(p, call('delete_customer', { id: 1 }), who)).toMatchObject({ action: 'deny', rule: 'no-deletes' });
  expect(decide(p, call('run_query', { database: 'prod', sql: 'select 1' }), who)).toMatchObject({
    action: 'hold',
    rule: 'prod-needs-approval',
    approval: hold,
  });
  const staging = decide(p, call('run_query', { database: 'staging' }), who);
  expect(staging).toMatchObject({ action: 'allow' });
  expect(staging.rule).toBeUndefined();
  expect(decide(p, call('search_customers', { q: 'x' }), who).action).toBe('allow');
});

test('first matching rule wins; a rule without target applies to every MCP target', () => {
  const p = policy([
    { name: 'allow-search', action: 'allow', match: { mcp: { tools: ['search_*'] } } },
    { name: 'no-search-on-wiki', action: 'deny', match: { target: 'wiki', mcp: { tools: ['search_*'] } } },
  ]);
  expect(decide(p, call('search_customers'), who)).toMatchObject({ action: 'allow', rule: 'allow-search' });
  expect(decide(p, call('search_pages', {}, 'wiki'), who)).toMatchObject({ action: 'allow', rule: 'allow-search' });
  expect(byDefault(decide(p, call('other'), who))).toBe('deny');
});

test('rules with sql or http criteria never match MCP messages; match.mcp rules never match SQL or HTTP', () => {
  const p = policy(
    [
      { name: 'sql-deny', action: 'deny', match: { sql: { statements: ['SELECT'] } } },
      { name: 'http-deny', action: 'deny', match: { http: { methods: ['POST'] } } },
      { name: 'http-response-deny', action: 'deny', match: { http: { response: { json: [{ path: '$.x' }] } } } },
      { name: 'mcp-deny', action: 'deny', match: { mcp: {} } },
    ],
    'allow',
  );
  expect(decide(p, call('anything'), who)).toMatchObject({ action: 'deny', rule: 'mcp-deny' });
  const p2 = policy([{ name: 'mcp-deny', action: 'deny', match: { mcp: { tools: ['*'] } } }], 'allow');
  const http: HttpOperation = { type: 'http', target: 'api', method: 'POST', path: '/x', headers: {} };
  expect(byDefault(decide(p2, http, who))).toBe('allow');
  const sql: SqlOperation = {
    type: 'sql',
    target: 'db',
    statements: [{ kind: 'SELECT', kinds: ['SELECT'], tables: [], functions: [], columns: [] }],
  };
  expect(byDefault(decide(p2, sql, who))).toBe('allow');
  // An empty mcp match is every MCP message, and still nothing else.
  const p3 = policy([{ name: 'mcp-all', action: 'deny', match: { mcp: {} } }], 'allow');
  expect(decide(p3, http, who).action).toBe('allow');
  expect(decide(p3, msg('initialize'), who)).toMatchObject({ action: 'deny', rule: 'mcp-all' });
});

test('a rule with only target, subjects or groups matches every message on its target, plumbing included', () => {
  const p = policy([
    { name: 'sre-only', action: 'allow', match: { target: 'crm-tools', groups: ['sre'] } },
    { name: 'nobody-else', action: 'deny', match: { target: 'crm-tools' } },
  ]);
  expect(decide(p, call('delete_customer'), sre)).toMatchObject({ action: 'allow', rule: 'sre-only' });
  expect(decide(p, msg('initialize'), who)).toMatchObject({ action: 'deny', rule: 'nobody-else' });
  expect(decide(p, msg('tools/list'), who)).toMatchObject({ action: 'deny', rule: 'nobody-else' });
  // The other target is untouched by both: plumbing passes, the rest falls to default deny.
  expect(byDefault(decide(p, msg('initialize', 'wiki'), who))).toBe('allow');
  expect(byDefault(decide(p, call('x', {}, 'wiki'), who))).toBe('deny');
});

test('protocol plumbing is allowed under default deny; everything else falls to the default', () => {
  const p = policy([]);
  for (const m of [
    'initialize',
    'ping',
    'notifications/initialized',
    'notifications/cancelled',
    'notifications/roots/list_changed',
    'tools/list',
    'resources/list',
    'resources/templates/list',
    'prompts/list',
    '',
  ]) {
    expect(isMcpPlumbing(m)).toBe(true);
    expect(byDefault(decide(p, msg(m), who))).toBe('allow');
  }
  for (const m of [
    'tools/call',
    'resources/read',
    'prompts/get',
    'completion/complete',
    'resources/subscribe',
    'logging/setLevel',
    'Tools/List',
  ]) {
    expect(isMcpPlumbing(m)).toBe(false);
    expect(byDefault(decide(p, msg(m), who))).toBe('deny');
    expect(decide(p, msg(m), who).reason).toBe('no rule matched; policy default is deny');
  }
  // Not a prefix trick: only the exact names and the notifications/ namespace.
  expect(isMcpPlumbing('tools/list/extra')).toBe(false);
  expect(isMcpPlumbing('notifications')).toBe(false);
});

test('a rule that matches plumbing still decides it', () => {
  const p = policy(
    [
      { name: 'no-resource-listing', action: 'deny', match: { mcp: { methods: ['resources/list'] } } },
      { name: 'no-pings', action: 'deny', match: { target: 'wiki', mcp: { methods: ['ping', 'notifications/initialized'] } } },
    ],
    'allow',
  );
  expect(decide(p, msg('resources/list'), who)).toMatchObject({ action: 'deny', rule: 'no-resource-listing' });
  expect(decide(p, msg('ping', 'wiki'), who)).toMatchObject({ action: 'deny', rule: 'no-pings' });
  expect(decide(p, msg('ping'), who).action).toBe('allow');
});

test('methods are exact JSON-RPC names, case-sensitive', () => {
  const p = policy([{ name: 'reads', action: 'allow', match: { mcp: { methods: ['resources/read', 'prompts/get'] } } }]);
  expect(decide(p, { ...msg('resources/read'), resource: 'file:///etc/x' }, who)).toMatchObject({ action: 'allow', rule: 'reads' });
  expect(decide(p, msg('prompts/get'), who)).toMatchObject({ action: 'allow', rule: 'reads' });
  expect(decide(p, msg('Resources/Read'), who).action).toBe('deny');
  expect(decide(p, msg('resources/read '), who).action).toBe('deny');
  expect(decide(p, call('x'), who).action).toBe('deny');
});

test('tools and arguments match only tools/call (an operation with a tool)', () => {
  const p = policy(
    [
      { name: 'no-x', action: 'deny', match: { mcp: { tools: ['*'] } } },
      { name: 'no-prod', action: 'deny', match: { mcp: { arguments: [{ path: '$.database', values: ['prod'] }] } } },
    ],
    'allow',
  );
  // resources/read and prompts/get carry no tool: neither rule sees them.
  expect(decide(p, { ...msg('prompts/get'), resource: 'x' }, who).action).toBe('allow');
  expect(decide(p, msg('resources/read'), who).action).toBe('allow');
  expect(decide(p, call('x'), who)).toMatchObject({ action: 'deny', rule: 'no-x' });
  const onlyArgs = policy(
    [{ name: 'no-prod', action: 'deny', match: { mcp: { arguments: [{ path: '$.database', values: ['prod'] }] } } }],
    'allow',
  );
  expect(decide(onlyArgs, call('anything', { database: 'prod' }), who)).toMatchObject({ action: 'deny', rule: 'no-prod' });
  expect(decide(onlyArgs, call('anything', { database: 'dev' }), who).action).toBe('allow');
});

test('tool globs: deny and hold compare case-insensitively, allow exactly; * crosses every character', () => {
  const p = policy(
    [
      { name: 'allow-search', action: 'allow', match: { mcp: { tools: ['search_customers', 'crm.read/*'] } } },
      { name: 'no-deletes', action: 'deny', match: { mcp: { tools: ['delete_*'] } } },
    ],
    'deny',
  );
  expect(decide(p, call('search_customers'), who)).toMatchObject({ action: 'allow', rule: 'allow-search' });
  expect(decide(p, call('crm.read/orders.v2'), who)).toMatchObject({ action: 'allow', rule: 'allow-search' });
  // A different tool on the server: the allow rule does not vouch for it.
  expect(byDefault(decide(p, call('Search_Customers'), who))).toBe('deny');
  expect(byDefault(decide(p, call('CRM.READ/orders'), who))).toBe('deny');
  const d = policy([{ name: 'no-deletes', action: 'deny', match: { mcp: { tools: ['delete_*'] } } }], 'allow');
  expect(decide(d, call('DELETE_customer'), who)).toMatchObject({ action: 'deny', rule: 'no-deletes' });
  expect(decide(d, call('delete_a.b/c'), who)).toMatchObject({ action: 'deny', rule: 'no-deletes' });
  expect(decide(d, call('undelete_x'), who).action).toBe('allow');
  expect(decide(d, call('delete'), who).action).toBe('allow');
  // Regex metacharacters in a tool name are literal.
  const lit = policy([{ name: 'lit', action: 'deny', match: { mcp: { tools: ['a.b', 'x+y*'] } } }], 'allow');
  expect(decide(lit, call('a.b'), who).action).toBe('deny');
  expect(decide(lit, call('aXb'), who).action).toBe('allow');
  expect(decide(lit, call('x+y_z'), who).action).toBe('deny');
  expect(decide(lit, call('xxy'), who).action).toBe('allow');
});

test('arguments: every condition must hold, values are OR, paths are relative to the arguments object', () => {
  const p = policy(
    [
      {
        name: 'prod-writes',
        action: 'deny',
        match: {
          mcp: {
            tools: ['run_query'],
            arguments: [
              { path: '$.database', values: ['prod', 'prod-eu'] },
              { path: '$..mode', values: ['write'] },
            ],
          },
        },
      },
      { name: 'has-sql', action: 'hold', approval: hold, match: { mcp: { arguments: [{ path: '$.sql' }] } } },
    ],
    'allow',
  );
  expect(decide(p, call('run_query', { database: 'prod-eu', opts: { mode: 'write' } }), who)).toMatchObject({ rule: 'prod-writes' });
  expect(decide(p, call('run_query', { database: 'prod', opts: { mode: 'read' } }), who).action).toBe('allow');
  expect(decide(p, call('run_query', { database: 'prod', sql: 'x' }), who)).toMatchObject({ action: 'hold', rule: 'has-sql' });
  // Numbers and booleans compare as their text; objects never equal a value.
  const n = policy(
    [{ name: 'n', action: 'deny', match: { mcp: { arguments: [{ path: '$.limit', values: ['1000', 'true'] }] } } }],
    'allow',
  );
  expect(decide(n, call('t', { limit: 1000 }), who).action).toBe('deny');
  expect(decide(n, call('t', { limit: true }), who).action).toBe('deny');
  expect(decide(n, call('t', { limit: { v: 1000 } }), who).action).toBe('allow');
  // The arguments object itself is the root, not params: $.arguments.database selects nothing.
  const wrongRoot = policy([{ name: 'w', action: 'deny', match: { mcp: { arguments: [{ path: '$.arguments.database' }] } } }], 'allow');
  expect(decide(wrongRoot, call('t', { database: 'prod' }), who).action).toBe('allow');
});

test('absent arguments select nothing; arguments that cannot be searched match restrictive rules only (fail closed)', () => {
  const deny = policy([{ name: 'no-prod', action: 'deny', match: { mcp: { arguments: [{ path: '$.database' }] } } }], 'allow');
  expect(decide(deny, call('t'), who).action).toBe('allow');
  expect(decide(deny, call('t', UNPARSEABLE_BODY), who)).toMatchObject({ action: 'deny', rule: 'no-prod' });
  let deep: unknown = { database: 'dev' };
  for (let i = 0; i < MAX_JSON_DEPTH + 5; i++) deep = { x: deep };
  const deepDeny = policy(
    [{ name: 'no-prod', action: 'deny', match: { mcp: { arguments: [{ path: '$..database', values: ['prod'] }] } } }],
    'allow',
  );
  expect(decide(deepDeny, call('t', deep), who)).toMatchObject({ action: 'deny', rule: 'no-prod' });
  const allow = policy([{ name: 'dev-ok', action: 'allow', match: { mcp: { arguments: [{ path: '$..database', values: ['dev'] }] } } }]);
  expect(byDefault(decide(allow, call('t', deep), who))).toBe('deny');
  expect(byDefault(decide(allow, call('t', UNPARSEABLE_BODY), who))).toBe('deny');
  expect(decide(allow, call('t', { database: 'dev' }), who)).toMatchObject({ action: 'allow', rule: 'dev-ok' });
});

test('subjects and groups limit match.mcp rules like any other', () => {
  const p = policy([
    { name: 'sre-deletes', action: 'allow', match: { groups: ['sre'], mcp: { tools: ['delete_*'] } } },
    { name: 'search', action: 'allow', match: { subjects: ['*:worker'], mcp: { tools: ['search_*'] } } },
  ]);
  expect(decide(p, call('delete_customer'), sre)).toMatchObject({ action: 'allow', rule: 'sre-deletes' });
  expect(decide(p, call('delete_customer'), who).action).toBe('deny');
  expect(decide(p, call('search_customers'), who)).toMatchObject({ action: 'allow', rule: 'search' });
  expect(decide(p, call('search_customers'), sre).action).toBe('deny');
});

describe('mcpToolVisible', () => {
  test('a deny without argument conditions hides; allow and hold show', () => {
    const p = policy([
      { name: 'no-deletes', action: 'deny', match: { target: 'crm-tools', mcp: { tools: ['delete_*'] } } },
      { name: 'queries', action: 'hold', approval: hold, match: { mcp: { tools: ['run_query'] } } },
      { name: 'search', action: 'allow', match: { mcp: { tools: ['search_*'] } } },
    ]);
    expect(mcpToolVisible(p, 'crm-tools', 'delete_customer', who)).toBe(false);
    expect(mcpToolVisible(p, 'crm-tools', 'Delete_Customer', who)).toBe(false);
    expect(mcpToolVisible(p, 'wiki', 'delete_customer', who)).toBe(false); // default deny
    expect(mcpToolVisible(p, 'crm-tools', 'run_query', who)).toBe(true);
    expect(mcpToolVisible(p, 'crm-tools', 'search_customers', who)).toBe(true);
    expect(mcpToolVisible(p, 'crm-tools', 'unlisted', who)).toBe(false);
  });

  test('no rule: visible iff defaultAction is allow', () => {
    expect(mcpToolVisible(policy([], 'allow'), 'crm-tools', 't', who)).toBe(true);
    expect(mcpToolVisible(policy([], 'deny'), 'crm-tools', 't', who)).toBe(false);
  });

  test('with argument conditions: allow or hold shows (some call may pass), deny keeps walking', () => {
    const p = policy(
      [
        {
          name: 'no-prod',
          action: 'deny',
          match: { mcp: { tools: ['run_query'], arguments: [{ path: '$.database', values: ['prod'] }] } },
        },
        { name: 'no-drop', action: 'deny', match: { mcp: { tools: ['run_query', 'drop_table'] } } },
      ],
      'allow',
    );
    // Past no-prod (some calls pass it) to no-drop, which denies every call.
    expect(mcpToolVisible(p, 'crm-tools', 'run_query', who)).toBe(false);
    const p2 = policy(
      [
        {
          name: 'no-prod',
          action: 'deny',
          match: { mcp: { tools: ['run_query'], arguments: [{ path: '$.database', values: ['prod'] }] } },
        },
      ],
      'allow',
    );
    expect(mcpToolVisible(p2, 'crm-tools', 'run_query', who)).toBe(true);
    const p3 = policy([
      { name: 'dev-ok', action: 'allow', match: { mcp: { tools: ['run_query'], arguments: [{ path: '$.database', values: ['dev'] }] } } },
    ]);
    expect(mcpToolVisible(p3, 'crm-tools', 'run_query', who)).toBe(true);
    const p4 = policy([
      { name: 'prod-held', action: 'hold', approval: hold, match: { mcp: { arguments: [{ path: '$.database', values: ['prod'] }] } } },
    ]);
    expect(mcpToolVisible(p4, 'crm-tools', 'anything', who)).toBe(true);
  });

  test('rules whose methods leave out tools/call, and sql/http rules, are passed over', () => {
    const p = policy(
      [
        { name: 'no-reads', action: 'deny', match: { mcp: { methods: ['resources/read'] } } },
        { name: 'http', action: 'deny', match: { http: { methods: ['POST'] } } },
        { name: 'sql', action: 'deny', match: { sql: { statements: ['SELECT'] } } },
      ],
      'allow',
    );
    expect(mcpToolVisible(p, 'crm-tools', 't', who)).toBe(true);
    const q = policy([{ name: 'calls', action: 'deny', match: { mcp: { methods: ['tools/call'] } } }], 'allow');
    expect(mcpToolVisible(q, 'crm-tools', 't', who)).toBe(false);
  });

  test('a target-wide deny hides everything on that target only; identity counts', () => {
    const p = policy(
      [
        { name: 'sre-all', action: 'allow', match: { target: 'crm-tools', groups: ['sre'] } },
        { name: 'closed', action: 'deny', match: { target: 'crm-tools' } },
      ],
      'allow',
    );
    expect(mcpToolVisible(p, 'crm-tools', 'search_customers', who)).toBe(false);
    expect(mcpToolVisible(p, 'crm-tools', 'search_customers', sre)).toBe(true);
    expect(mcpToolVisible(p, 'wiki', 'search_pages', who)).toBe(true);
  });

  test('agrees with decide for calls whenever no argument conditions are involved', () => {
    const p = policy(
      [
        { name: 'a', action: 'allow', match: { mcp: { tools: ['Search_*'] } } },
        { name: 'd', action: 'deny', match: { mcp: { tools: ['search_*', 'delete_*'] } } },
        { name: 'h', action: 'hold', approval: hold, match: { target: 'wiki' } },
      ],
      'allow',
    );
    for (const target of ['crm-tools', 'wiki']) {
      for (const tool of ['Search_x', 'search_x', 'SEARCH_X', 'delete_y', 'other']) {
        expect([target, tool, mcpToolVisible(p, target, tool, who)]).toEqual([
          target,
          tool,
          decide(p, call(tool, {}, target), who).action !== 'deny',
        ]);
      }
    }
  });
});
