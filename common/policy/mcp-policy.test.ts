// targets[].mcp and match.mcp (issue 13): the CRD schema, the semantic checks with field-named
// errors, the CEL rules agreeing with them, and a YAML policy that loads and decides.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { compilePolicy } from './compile';
import { decide, mcpToolVisible } from './engine';
import type { PolicyError } from './errors';
import { loadAccessPolicy, parsePolicyYaml } from './load';
import { findRepoRoot, loadCrdSchema, validateAccessPolicy } from './schema';
import type { Identity } from './types';

const root = findRepoRoot();
const example = path.join(root, 'examples/mcp-policy.yaml');
const FP = `sha256:${'0123456789abcdef'.repeat(4)}`;

function base(): Record<string, any> {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: {
      targets: [
        { name: 'crm', postgres: { host: '127.0.0.1', database: 'crm', credentialsSecret: 'crm-db', listenPort: 15432 } },
        { name: 'openai', http: { baseUrl: 'https://api.openai.com' } },
        { name: 'tools', mcp: { url: 'https://tools.internal/mcp', credentialsSecret: 'tools' }, env: 'TOOLS_MCP_URL' },
      ],
      rules: [],
    },
  };
}

function errorsOf(doc: unknown): PolicyError[] {
  const r = validateAccessPolicy(doc);
  return r.ok ? [] : r.errors;
}

function withRule(match: Record<string, unknown>, action = 'deny'): Record<string, any> {
  const d = base();
  d.spec.rules.push({ name: 'r', action, match, ...(action === 'hold' ? { approval: { approvers: { groups: ['sre'] } } } : {}) });
  return d;
}

test('the MCP example loads, is defaulted, and decides as its comments say', async () => {
  const policy = await loadAccessPolicy(example);
  expect(policy.spec.targets[0].mcp).toMatchObject({ url: 'https://tools.internal/mcp', pinToolDefinitions: true });
  const p = compilePolicy(policy);
  const who: Identity = { subject: 'system:serviceaccount:agents:crm-agent', groups: [], source: 'pod' };
  const call = (tool: string, args: unknown) =>
    decide(p, { type: 'mcp', target: 'crm-tools', method: 'tools/call', tool, arguments: args }, who);
  expect(call('delete_customer', { id: 7 })).toMatchObject({ action: 'deny', rule: 'no-deletes' });
  expect(call('run_query', { database: 'prod', sql: 'select 1' })).toMatchObject({ action: 'hold', rule: 'prod-needs-approval' });
  expect(call('run_query', { database: 'staging', sql: 'select 1' })).toMatchObject({ action: 'allow', rule: 'crm-tools' });
  expect(call('export_all', {}).action).toBe('deny');
  expect(decide(p, { type: 'mcp', target: 'crm-tools', method: 'initialize' }, who).action).toBe('allow');
  expect(mcpToolVisible(p, 'crm-tools', 'delete_customer', who)).toBe(false);
  expect(mcpToolVisible(p, 'crm-tools', 'search_customers', who)).toBe(true);
  expect(mcpToolVisible(p, 'crm-tools', 'export_all', who)).toBe(false);
});

test('the base policy with an mcp target and a full match.mcp rule is valid', () => {
  const d = withRule({
    target: 'tools',
    mcp: { methods: ['tools/call'], tools: ['delete_*'], arguments: [{ path: '$.id', values: ['1'] }] },
  });
  d.spec.targets[2].mcp = {
    url: 'http://127.0.0.1:9000/mcp',
    credentialsSecret: 'tools',
    auth: { header: 'x-api-key' },
    timeout: '30s',
    maxBodyBytes: 65536,
    pins: [{ tool: 'run_query', fingerprint: FP }],
  };
  expect(errorsOf(d)).toEqual([]);
  const r = validateAccessPolicy(d);
  expect(r.ok && r.policy.spec.targets[2].mcp?.pinToolDefinitions).toBe(true);
});

describe('field-named errors', () => {
  const cases: Array<[string, (d: any) => void, Array<{ path: string; field?: string; message: RegExp }>]> = [
    [
      'mcp and http in one target',
      (d) => (d.spec.targets[2].http = { baseUrl: 'https://x.example' }),
      [{ path: 'spec.targets[2]', message: /sets both http and mcp; a target is exactly one of postgres, http or mcp/ }],
    ],
    [
      'mcp without url',
      (d) => delete d.spec.targets[2].mcp.url,
      [{ path: 'spec.targets[2].mcp', field: 'url', message: /"url" is missing/ }],
    ],
    [
      'url not http',
      (d) => (d.spec.targets[2].mcp.url = 'ftp://x/mcp'),
      [{ path: 'spec.targets[2].mcp.url', message: /http:\/\/ or https:\/\// }],
    ],
    [
      'unknown mcp field',
      (d) => (d.spec.targets[2].mcp.pinTools = true),
      [{ path: 'spec.targets[2].mcp', message: /unknown field "pinTools"/ }],
    ],
    ['bad timeout', (d) => (d.spec.targets[2].mcp.timeout = '0s'), [{ path: 'spec.targets[2].mcp.timeout', message: /longer than zero/ }]],
    [
      'auth without credentialsSecret',
      (d) => {
        delete d.spec.targets[2].mcp.credentialsSecret;
        d.spec.targets[2].mcp.auth = { header: 'Authorization' };
      },
      [{ path: 'spec.targets[2].mcp.auth', message: /auth needs credentialsSecret/ }],
    ],
    [
      'two auth ways',
      (d) => (d.spec.targets[2].mcp.auth = { header: 'X', queryParam: 'k' }),
      [{ path: 'spec.targets[2].mcp.auth', message: /set only one of header, queryParam or basic/ }],
    ],
    [
      'bad fingerprint',
      (d) => (d.spec.targets[2].mcp.pins = [{ tool: 't', fingerprint: 'sha256:ABC' }]),
      [{ path: 'spec.targets[2].mcp.pins[0].fingerprint', message: /must be a tool fingerprint: sha256: and 64 lower-case hex digits/ }],
    ],
    [
      'pin without fingerprint',
      (d) => (d.spec.targets[2].mcp.pins = [{ tool: 't' }]),
      [{ path: 'spec.targets[2].mcp.pins[0]', field: 'fingerprint', message: /"fingerprint" is missing/ }],
    ],
    [
      'a tool pinned twice',
      (d) =>
        (d.spec.targets[2].mcp.pins = [
          { tool: 't', fingerprint: FP },
          { tool: 't', fingerprint: FP },
        ]),
      [{ path: 'spec.targets[2].mcp.pins[1].tool', message: /already pinned by spec.targets\[2\].mcp.pins\[0\]/ }],
    ],
    [
      'pins with pinning off',
      (d) => Object.assign(d.spec.targets[2].mcp, { pinToolDefinitions: false, pins: [{ tool: 't', fingerprint: FP }] }),
      [{ path: 'spec.targets[2].mcp.pins', message: /only checked when pinToolDefinitions is true/ }],
    ],
    [
      'mcp match on an http target',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { target: 'openai', mcp: { tools: ['x'] } } }),
      [{ path: 'spec.rules[0].match.mcp', message: /mcp matches apply only to mcp targets, but "openai" is an http target/ }],
    ],
    [
      'mcp match on a postgres target',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { target: 'crm', mcp: {} } }),
      [{ path: 'spec.rules[0].match.mcp', message: /but "crm" is a postgres target/ }],
    ],
    [
      'http match on an mcp target',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { target: 'tools', http: { methods: ['POST'] } } }),
      [{ path: 'spec.rules[0].match.http', message: /http matches apply only to http targets, but "tools" is an mcp target/ }],
    ],
    [
      'sql match on an mcp target',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { target: 'tools', sql: { statements: ['SELECT'] } } }),
      [{ path: 'spec.rules[0].match.sql', message: /sql matches apply only to postgres targets, but "tools" is an mcp target/ }],
    ],
    [
      'mcp and http in one match',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { http: {}, mcp: {} } }),
      [{ path: 'spec.rules[0].match', message: /has both http and mcp/ }],
    ],
    [
      'mcp match and no mcp target',
      (d) => {
        d.spec.targets.pop();
        d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { tools: ['x'] } } });
      },
      [{ path: 'spec.rules[0].match.mcp', message: /can never apply: the policy has no mcp target/ }],
    ],
    [
      'tools with methods that leave out tools/call',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { methods: ['resources/read'], tools: ['x'] } } }),
      [{ path: 'spec.rules[0].match.mcp.tools', message: /tools only match tools\/call, but methods does not include tools\/call/ }],
    ],
    [
      'arguments with methods that leave out tools/call',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { methods: ['prompts/get'], arguments: [{ path: '$.x' }] } } }),
      [{ path: 'spec.rules[0].match.mcp.arguments', message: /arguments only match tools\/call/ }],
    ],
    [
      'bad argument path',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { arguments: [{ path: '$.a[' }] } } }),
      [{ path: 'spec.rules[0].match.mcp.arguments[0].path', message: /./ }],
    ],
    [
      'argument path without $',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { arguments: [{ path: 'database' }] } } }),
      [{ path: 'spec.rules[0].match.mcp.arguments[0].path', message: /must be a JSONPath starting with \$/ }],
    ],
    [
      'empty tools list',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { tools: [] } } }),
      [{ path: 'spec.rules[0].match.mcp.tools', message: /must list at least one item/ }],
    ],
    [
      'blank tool pattern',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { tools: [' '] } } }),
      [{ path: 'spec.rules[0].match.mcp.tools[0]', message: /cannot be empty/ }],
    ],
    [
      'unknown match.mcp field',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { tool: ['x'] } } }),
      [{ path: 'spec.rules[0].match.mcp', message: /unknown field "tool" \(did you mean "tools"\?\)/ }],
    ],
  ];

  test.each(cases)('%s', (_name, mutate, expected) => {
    const d = base();
    mutate(d);
    const errors = errorsOf(d);
    expect(errors).toEqual(expected.map((e) => expect.objectContaining({ ...e, message: expect.stringMatching(e.message) })));
  });

  test('warden validate points at the line of the field', () => {
    const yaml = [
      'apiVersion: agentwarden.io/v1alpha1',
      'kind: AccessPolicy',
      'metadata: {name: p}',
      'spec:',
      '  targets:',
      '    - name: tools',
      '      mcp: {url: "https://t/mcp"}',
      '  rules:',
      '    - name: r',
      '      action: deny',
      '      match:',
      '        mcp:',
      '          methods: [resources/read]',
      '          tools: [delete_x]',
    ].join('\n');
    const [doc] = parsePolicyYaml(yaml, 'p.yaml');
    expect(doc.status).toBe('invalid');
    expect(doc.status === 'invalid' && doc.errors).toEqual([expect.objectContaining({ path: 'spec.rules[0].match.mcp.tools', line: 14 })]);
  });
});

describe('CEL rules in the CRD agree with the semantic checks', () => {
  function cel(docs: unknown[]): { parseErrors: unknown[]; results: Array<Array<{ path: string; message: string }>> } {
    const out = execFileSync(process.execPath, [path.join(root, 'test/support/common/cel-eval.mjs')], {
      input: JSON.stringify({ crd: loadCrdSchema(), docs }),
      encoding: 'utf8',
    });
    return JSON.parse(out);
  }

  const mistakes: Array<[string, (d: any) => void]> = [
    ['mcp and http in one target', (d) => (d.spec.targets[2].http = { baseUrl: 'https://x.example' })],
    [
      'mcp and postgres in one target',
      (d) => (d.spec.targets[2].postgres = { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 1 }),
    ],
    ['mcp auth without credentialsSecret', (d) => (d.spec.targets[2].mcp = { url: 'https://x/mcp', auth: { header: 'X' } })],
    ['mcp two auth ways', (d) => (d.spec.targets[2].mcp.auth = { header: 'X', basic: true })],
    [
      'pins with pinning off',
      (d) => Object.assign(d.spec.targets[2].mcp, { pinToolDefinitions: false, pins: [{ tool: 't', fingerprint: FP }] }),
    ],
    ['mcp match on an http target', (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { target: 'openai', mcp: {} } })],
    ['http match on an mcp target', (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { target: 'tools', http: {} } })],
    ['sql match on an mcp target', (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { target: 'tools', sql: {} } })],
    ['sql and mcp in one match', (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { sql: {}, mcp: {} } })],
    [
      'tools without tools/call',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { methods: ['ping'], tools: ['x'] } } }),
    ],
    [
      'arguments without tools/call',
      (d) => d.spec.rules.push({ name: 'r', action: 'deny', match: { mcp: { methods: ['ping'], arguments: [{ path: '$.x' }] } } }),
    ],
  ];

  test('the CEL rules parse and pass the example and the base policy', () => {
    const policy = parsePolicyYaml(fs.readFileSync(example, 'utf8'), example)[0];
    expect(policy.status).toBe('valid');
    const r = cel([policy.status === 'valid' ? policy.policy : undefined, base(), withRule({ target: 'tools', mcp: { tools: ['x'] } })]);
    expect(r.parseErrors).toEqual([]);
    expect(r.results).toEqual([[], [], []]);
  });

  test('each mistake fails both the CEL rules and the offline validator', () => {
    const docs = mistakes.map(([, mutate]) => {
      const d = base();
      mutate(d);
      return d;
    });
    const results = cel(docs).results;
    const disagreements = mistakes.flatMap(([name], i) => {
      const offline = errorsOf(docs[i]).length > 0;
      const server = results[i].length > 0;
      return offline && server ? [] : [`${name}: offline ${offline ? 'rejects' : 'accepts'}, CEL ${server ? 'rejects' : 'accepts'}`];
    });
    expect(disagreements).toEqual([]);
  });
});
