import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { PolicyError } from './errors';
import { findRepoRoot, loadCrdSchema, validateAccessPolicy } from './schema';
import { checkSemantics, parseColumnPattern, parseDuration, parseJsonPath } from './semantic';

const root = findRepoRoot();

function base(): Record<string, any> {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: {
      targets: [
        {
          name: 'crm',
          postgres: { host: '127.0.0.1', database: 'crm', credentialsSecret: 'crm-db', listenPort: 15432 },
          env: 'DATABASE_URL',
        },
        { name: 'openai', http: { baseUrl: 'https://api.openai.com', credentialsSecret: 'openai' }, env: 'OPENAI_BASE_URL' },
      ],
      rules: [],
      masking: [],
    },
  };
}

function errorsOf(doc: unknown): PolicyError[] {
  const r = validateAccessPolicy(doc);
  return r.ok ? [] : r.errors;
}

describe('parseDuration', () => {
  test.each([
    ['10m', 600_000],
    ['30s', 30_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    ['1m30s500ms', 90_500],
    ['0s', 0],
  ])('%s = %d ms', (s, ms) => expect(parseDuration(s)).toBe(ms));

  test.each(['', '10', '10 m', 'm', '1d', '-1s', '10minutes', '1h 30m'])('rejects %j', (s) => {
    expect(() => parseDuration(s)).toThrow(/duration/);
  });
});

describe('parseColumnPattern', () => {
  test('table.column and schema.table.column, lower-cased', () => {
    expect(parseColumnPattern('customers.card_number')).toEqual({ table: 'customers', column: 'card_number' });
    expect(parseColumnPattern('Public.Customers.SSN')).toEqual({ schema: 'public', table: 'customers', column: 'ssn' });
    expect(parseColumnPattern('*.ssn')).toEqual({ table: '*', column: 'ssn' });
    expect(parseColumnPattern('public.cust*.card_*')).toEqual({ schema: 'public', table: 'cust*', column: 'card_*' });
  });

  test.each([
    ['card_number', /table\.column or schema\.table\.column/],
    ['a.b.c.d', /table\.column or schema\.table\.column/],
    ['customers.', /empty name part/],
    ['customers.1col', /"1col" in "customers.1col" is not a valid name/],
    ['cust omers.ssn', /not a valid name/],
  ])('rejects %j', (s, message) => expect(() => parseColumnPattern(s)).toThrow(message));
});

describe('parseJsonPath', () => {
  test('the supported subset', () => {
    expect(parseJsonPath('$')).toEqual([]);
    expect(parseJsonPath('$..email')).toEqual([{ type: 'name', name: 'email', descendant: true }]);
    expect(parseJsonPath('$.data[*].card')).toEqual([
      { type: 'name', name: 'data', descendant: false },
      { type: 'wildcard', descendant: false },
      { type: 'name', name: 'card', descendant: false },
    ]);
    expect(parseJsonPath(`$.choices[0]['message']["content"]`)).toEqual([
      { type: 'name', name: 'choices', descendant: false },
      { type: 'index', index: 0, descendant: false },
      { type: 'name', name: 'message', descendant: false },
      { type: 'name', name: 'content', descendant: false },
    ]);
    expect(parseJsonPath(`$..['x-api-key']`)).toEqual([{ type: 'name', name: 'x-api-key', descendant: true }]);
    expect(parseJsonPath('$.*..[2]')).toEqual([
      { type: 'wildcard', descendant: false },
      { type: 'index', index: 2, descendant: true },
    ]);
    expect(parseJsonPath('$.tools[*].function.name')).toHaveLength(4);
  });

  test.each([
    ['email', /must start with \$/],
    ['$.', /expected a name/],
    ['$..', /expected a name/],
    ['$.[0]', /a name or "\*" must follow "\."/],
    ['$[name]', /inside \[ \] at position 2/],
    ['$[0', /expected "\]"/],
    ["$['a", /unterminated quoted name/],
    ["$['']", /empty quoted name/],
    ['$[-1]', /non-negative index/],
    ['$[?(@.a)]', /inside \[ \]/],
    ['$x', /unexpected "x"/],
  ])('rejects %j', (s, message) => expect(() => parseJsonPath(s)).toThrow(message));
});

describe('semantic checks', () => {
  test('the example policy has no semantic problems', () => {
    const doc = YAML.parse(fs.readFileSync(path.join(root, 'examples/policy.yaml'), 'utf8'));
    expect(checkSemantics(doc)).toEqual([]);
  });

  test('duplicate target, rule and masking names', () => {
    const doc = base();
    doc.spec.targets.push({ name: 'crm', http: { baseUrl: 'https://x.example' } });
    doc.spec.rules = [
      { name: 'r', action: 'deny', match: {} },
      { name: 'r', action: 'allow', match: {} },
    ];
    doc.spec.masking = [
      { name: 'm', detectors: ['email'] },
      { name: 'm', detectors: ['phone'] },
    ];
    const errors = errorsOf(doc);
    expect(errors).toContainEqual({ path: 'spec.targets[2].name', message: 'duplicate target name "crm" (also used by spec.targets[0])' });
    expect(errors).toContainEqual({ path: 'spec.rules[1].name', message: 'duplicate rule name "r" (also used by spec.rules[0])' });
    expect(errors).toContainEqual({ path: 'spec.masking[1].name', message: 'duplicate masking name "m" (also used by spec.masking[0])' });
  });

  test('listen ports: unique and not the sidecar’s own', () => {
    const doc = base();
    doc.spec.targets.push({ name: 'a', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432 } });
    doc.spec.targets.push({ name: 'b', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15000 } });
    doc.spec.targets.push({ name: 'c', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15001 } });
    expect(errorsOf(doc)).toEqual([
      {
        path: 'spec.targets[2].postgres.listenPort',
        message: 'listenPort 15432 is already used by spec.targets[0]; each postgres target needs its own port',
      },
      { path: 'spec.targets[3].postgres.listenPort', message: "port 15000 is used by the sidecar's admin API; choose another listenPort" },
      {
        path: 'spec.targets[4].postgres.listenPort',
        message: "port 15001 is used by the sidecar's HTTP egress; choose another listenPort",
      },
    ]);
  });

  test('a target is exactly one of postgres or http', () => {
    const doc = base();
    doc.spec.targets[1].postgres = { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15433 };
    doc.spec.targets.push({ name: 'empty' });
    expect(errorsOf(doc)).toEqual([
      {
        path: 'spec.targets[1]',
        message: 'sets both postgres and http; a target is exactly one of postgres, http or mcp (split it into separate targets)',
      },
      { path: 'spec.targets[2]', message: 'must set one of postgres, http or mcp' },
    ]);
  });

  test('env variables are unique', () => {
    const doc = base();
    doc.spec.targets[1].env = 'DATABASE_URL';
    expect(errorsOf(doc)).toEqual([
      { path: 'spec.targets[1].env', message: 'env DATABASE_URL is already set by spec.targets[0]; each target needs its own variable' },
    ]);
  });

  test('http auth alternatives', () => {
    const doc = base();
    doc.spec.targets[1].http.auth = { header: 'Authorization', queryParam: 'key' };
    doc.spec.targets.push({ name: 'x', http: { baseUrl: 'https://x.example', auth: { valuePrefix: 'Bearer ' } } });
    expect(errorsOf(doc)).toEqual([
      { path: 'spec.targets[1].http.auth', message: 'sets header and queryParam; set only one of header, queryParam or basic' },
      { path: 'spec.targets[2].http.auth', message: 'auth needs credentialsSecret: the credential it attaches comes from that Secret' },
      { path: 'spec.targets[2].http.auth.valuePrefix', message: 'valuePrefix is only used together with header' },
    ]);
  });

  test('rule targets exist and match the right kind of target', () => {
    const doc = base();
    doc.spec.rules = [
      { name: 'a', action: 'deny', match: { target: 'payments' } },
      { name: 'b', action: 'deny', match: { target: 'openai', sql: { statements: ['DROP'] } } },
      { name: 'c', action: 'deny', match: { target: 'crm', http: { methods: ['POST'] } } },
      { name: 'd', action: 'deny', match: { sql: {}, http: {} } },
    ];
    expect(errorsOf(doc)).toEqual([
      { path: 'spec.rules[0].match.target', message: 'target "payments" is not defined in spec.targets (defined: crm, openai)' },
      { path: 'spec.rules[1].match.sql', message: 'sql matches apply only to postgres targets, but "openai" is an http target' },
      { path: 'spec.rules[2].match.http', message: 'http matches apply only to http targets, but "crm" is a postgres target' },
      {
        path: 'spec.rules[3].match',
        message:
          'has both sql and http; a rule matches SQL statements, HTTP requests or MCP messages, one of them (split it into separate rules)',
      },
    ]);
  });

  test('a sql match without a target needs some postgres target', () => {
    const doc = base();
    doc.spec.targets.shift();
    doc.spec.rules = [{ name: 'a', action: 'deny', match: { sql: { statements: ['DROP'] } } }];
    expect(errorsOf(doc)).toEqual([
      { path: 'spec.rules[0].match.sql', message: 'sql match can never apply: the policy has no postgres target' },
    ]);
  });

  test('hold rules need approvers; approval only on hold rules', () => {
    const doc = base();
    doc.spec.rules = [
      { name: 'a', action: 'hold', match: {} },
      { name: 'b', action: 'hold', approval: { timeout: '10m' }, match: {} },
      { name: 'c', action: 'hold', approval: { approvers: { users: [], groups: [] } }, match: {} },
      { name: 'd', action: 'hold', approval: { approvers: { users: ['alice'] }, count: 2 }, match: {} },
      { name: 'e', action: 'deny', approval: { approvers: { users: ['alice'] } }, match: {} },
      { name: 'f', action: 'hold', approval: { approvers: { groups: ['sre'] }, count: 2, timeout: '0s' }, match: {} },
    ];
    expect(errorsOf(doc)).toEqual([
      {
        path: 'spec.rules[0]',
        field: 'approval',
        message: 'required field "approval" is missing: a rule with action "hold" needs someone to approve',
      },
      {
        path: 'spec.rules[1].approval',
        field: 'approvers',
        message: 'required field "approvers" is missing: name at least one user or group who can approve',
      },
      { path: 'spec.rules[2].approval.approvers', message: 'must name at least one user or group who can approve' },
      { path: 'spec.rules[3].approval.count', message: 'needs 2 different approvers but only 1 user(s) are listed and no groups' },
      { path: 'spec.rules[4].approval', message: 'approval is only used by rules with action "hold" (this rule\'s action is "deny")' },
      { path: 'spec.rules[5].approval.timeout', message: 'must be longer than zero' },
    ]);
  });

  test('masking: something to mask, column and JSONPath syntax, known targets', () => {
    const doc = base();
    doc.spec.masking = [
      { name: 'nothing', strategy: 'hash' },
      { name: 'cols', columns: ['customers.card_number', 'x.1y'], jsonPaths: ['$..email', '$.a[b]', '$'], targets: ['crm', 'billing'] },
    ];
    expect(errorsOf(doc)).toEqual([
      // the schema's pattern catches the column first; schema errors come before semantic ones
      { path: 'spec.masking[1].columns[1]', message: expect.stringMatching(/^must be table\.column/) },
      { path: 'spec.masking[0]', message: 'masks nothing: set at least one of detectors, columns or jsonPaths' },
      {
        path: 'spec.masking[1].jsonPaths[1]',
        message: 'JSONPath "$.a[b]": expected *, a non-negative index or a quoted name inside [ ] at position 4',
      },
      {
        path: 'spec.masking[1].jsonPaths[2]',
        message: '"$" would mask the whole body; select the fields to mask, like $.card or $..email',
      },
      { path: 'spec.masking[1].targets[1]', message: 'target "billing" is not defined in spec.targets (defined: crm, openai)' },
    ]);
  });

  test('http match headers and json paths', () => {
    const doc = base();
    doc.spec.rules = [
      {
        name: 'a',
        action: 'deny',
        match: {
          target: 'openai',
          http: { headers: { 'bad header': '*' }, json: [{ path: '$.tools[*].function.name', values: ['x'] }, { path: '$.[' }] },
        },
      },
    ];
    expect(errorsOf(doc)).toEqual([
      { path: 'spec.rules[0].match.http.headers', message: '"bad header" is not a valid HTTP header name' },
      { path: 'spec.rules[0].match.http.json[1].path', message: 'JSONPath "$.[": a name or "*" must follow "." at position 3' },
    ]);
  });

  test('label selector operators and values', () => {
    const doc = base();
    doc.spec.podSelector = {
      matchExpressions: [
        { key: 'app', operator: 'In' },
        { key: 'tier', operator: 'Exists', values: ['x'] },
        { key: 'team', operator: 'NotIn', values: ['a'] },
      ],
    };
    expect(errorsOf(doc)).toEqual([
      { path: 'spec.podSelector.matchExpressions[0].values', message: 'operator In needs at least one value' },
      { path: 'spec.podSelector.matchExpressions[1].values', message: 'operator Exists takes no values' },
    ]);
  });

  test('semantic checks also run when the schema fails, without repeating its errors', () => {
    const doc = base();
    doc.spec.rules = [
      { name: 'a', action: 'hold', match: { target: 'nope' }, approval: { approvers: { groups: ['sre'] }, timeout: '10 minutes' } },
    ];
    doc.spec.targets[0].postgres.bogus = true;
    const errors = errorsOf(doc);
    expect(errors.map((e) => e.path)).toEqual(['spec.targets[0].postgres', 'spec.rules[0].approval.timeout', 'spec.rules[0].match.target']);
    expect(errors[1].message).toMatch(/^must be a duration like/);
  });

  test('malformed documents do not throw', () => {
    for (const doc of [null, 1, 'x', [], { spec: 'x' }, { spec: { targets: 'x', rules: [null, 1, { match: 'x' }], masking: [[]] } }]) {
      expect(() => checkSemantics(doc)).not.toThrow();
    }
  });
});

// The API server runs the CRD's CEL rules; these cases check that each semantic check above has a
// CEL twin that fails on the same document (and that the CEL rules pass a valid policy).
describe('CEL rules in the CRD agree with the semantic checks', () => {
  function celFailures(docs: unknown[]): { parseErrors: unknown[]; results: Array<Array<{ path: string; message: string }>> } {
    const out = execFileSync(process.execPath, [path.join(__dirname, '../../test/support/common/cel-eval.mjs')], {
      input: JSON.stringify({ crd: loadCrdSchema(), docs }),
      encoding: 'utf8',
    });
    return JSON.parse(out);
  }

  const cases: Array<[string, (d: any) => void]> = [
    ['unknown rule target', (d) => d.spec.rules.push({ name: 'a', action: 'deny', match: { target: 'nope' } })],
    ['sql match on http target', (d) => d.spec.rules.push({ name: 'a', action: 'deny', match: { target: 'openai', sql: {} } })],
    ['http match on postgres target', (d) => d.spec.rules.push({ name: 'a', action: 'deny', match: { target: 'crm', http: {} } })],
    ['sql and http in one match', (d) => d.spec.rules.push({ name: 'a', action: 'deny', match: { sql: {}, http: {} } })],
    ['unknown masking target', (d) => d.spec.masking.push({ name: 'm', detectors: ['email'], targets: ['nope'] })],
    ['masking without anything to mask', (d) => d.spec.masking.push({ name: 'm' })],
    [
      'duplicate listen port',
      (d) => d.spec.targets.push({ name: 'b', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432 } }),
    ],
    ['reserved listen port', (d) => (d.spec.targets[0].postgres.listenPort = 15001)],
    ['duplicate env', (d) => (d.spec.targets[1].env = 'DATABASE_URL')],
    ['target with both kinds', (d) => (d.spec.targets[1].postgres = { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 1 })],
    ['target with neither kind', (d) => d.spec.targets.push({ name: 'x' })],
    ['duplicate rule names', (d) => d.spec.rules.push({ name: 'a', action: 'deny', match: {} }, { name: 'a', action: 'deny', match: {} })],
    ['hold without approval', (d) => d.spec.rules.push({ name: 'a', action: 'hold', match: {} })],
    [
      'hold with empty approvers',
      (d) => d.spec.rules.push({ name: 'a', action: 'hold', approval: { approvers: { users: [] } }, match: {} }),
    ],
    [
      'approval on a deny rule',
      (d) => d.spec.rules.push({ name: 'a', action: 'deny', approval: { approvers: { users: ['x'] } }, match: {} }),
    ],
    [
      'zero timeout',
      (d) => d.spec.rules.push({ name: 'a', action: 'hold', approval: { approvers: { users: ['x'] }, timeout: '0m' }, match: {} }),
    ],
    ['auth without credentialsSecret', (d) => (d.spec.targets[1].http = { baseUrl: 'https://x.example', auth: { header: 'X' } })],
    ['two auth ways', (d) => (d.spec.targets[1].http.auth = { header: 'X', basic: true })],
    ['valuePrefix without header', (d) => (d.spec.targets[1].http.auth = { queryParam: 'k', valuePrefix: 'x' })],
    ['In without values', (d) => (d.spec.podSelector = { matchExpressions: [{ key: 'a', operator: 'In' }] })],
  ];

  test('the CEL rules parse, and pass the example and the base policy', () => {
    const example = YAML.parse(fs.readFileSync(path.join(root, 'examples/policy.yaml'), 'utf8'));
    const r = celFailures([example, base()]);
    expect(r.parseErrors).toEqual([]);
    expect(r.results).toEqual([[], []]);
  });

  test('each mistake fails both the CEL rules and the offline validator', () => {
    const docs = cases.map(([, mutate]) => {
      const d = base();
      mutate(d);
      return d;
    });
    const cel = celFailures(docs).results;
    const disagreements = cases.flatMap(([name], i) => {
      const offline = errorsOf(docs[i]).length > 0;
      const server = cel[i].length > 0;
      return offline && server ? [] : [`${name}: offline ${offline ? 'rejects' : 'accepts'}, CEL ${server ? 'rejects' : 'accepts'}`];
    });
    expect(disagreements).toEqual([]);
  });
});

describe('match.http.response', () => {
  test('is only allowed on deny rules, named at the field; its paths are checked', () => {
    const doc = base();
    doc.spec.rules = [
      {
        name: 'ok',
        action: 'deny',
        match: {
          target: 'openai',
          http: { response: { json: [{ path: '$..tool_calls[*].function.name', values: ['delete_database'] }] } },
        },
      },
      {
        name: 'held',
        action: 'hold',
        approval: { approvers: { groups: ['sre'] } },
        match: { target: 'openai', http: { response: { json: [{ path: '$.content[*].name' }] } } },
      },
      { name: 'allowed', action: 'allow', match: { http: { response: { json: [{ path: '$.x' }] } } } },
      { name: 'bad-path', action: 'deny', match: { http: { response: { json: [{ path: '$.a[' }] } } } },
    ];
    const errors = checkSemantics(doc);
    expect(errors).toContainEqual({
      path: 'spec.rules[1].match.http.response',
      message:
        'response criteria are only allowed on rules with action "deny" (this rule\'s action is "hold"); split the rule or make it deny',
    });
    expect(errors).toContainEqual({
      path: 'spec.rules[2].match.http.response',
      message:
        'response criteria are only allowed on rules with action "deny" (this rule\'s action is "allow"); split the rule or make it deny',
    });
    expect(errors.filter((e) => e.path.startsWith('spec.rules[3].match.http.response.json[0].path'))).toHaveLength(1);
    expect(errors.filter((e) => e.path.startsWith('spec.rules[0]'))).toEqual([]);
  });

  test('the CRD schema accepts the shape and bounds it', () => {
    const doc = base();
    doc.spec.rules = [
      {
        name: 'ok',
        action: 'deny',
        match: { target: 'openai', http: { response: { json: [{ path: '$.content_block.name', values: ['delete_database'] }] } } },
      },
    ];
    expect(errorsOf(doc)).toEqual([]);
    doc.spec.rules[0].match.http.response = { json: [] };
    expect(errorsOf(doc).length).toBeGreaterThan(0);
    doc.spec.rules[0].match.http.response = { json: [{ path: '$.x', extra: 1 }] };
    expect(errorsOf(doc).length).toBeGreaterThan(0);
  });
});

describe('spec.identity and duration bounds', () => {
  const base = (extra: Record<string, unknown>) => ({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: { targets: [{ name: 'api', http: { baseUrl: 'https://api.example.com' } }], ...extra },
  });

  test("the token verifier's checks run offline too, naming the field", () => {
    expect(checkSemantics(base({ identity: { issuer: 'http://idp.example.com', audiences: ['warden'] } }))).toEqual([
      expect.objectContaining({ path: 'spec.identity.issuer', message: expect.stringContaining('https://') }),
    ]);
    expect(checkSemantics(base({ identity: { issuer: 'https://idp.example.com', audiences: ['warden'], clockSkew: '1h' } }))).toEqual([
      expect.objectContaining({ path: 'spec.identity.clockSkew', message: expect.stringContaining('5m') }),
    ]);
    expect(checkSemantics(base({ identity: { issuer: 'https://idp.example.com', audiences: ['warden'] } }))).toEqual([]);
  });

  test('an approval timeout longer than a timer can wait is refused', () => {
    const errors = checkSemantics(
      base({
        rules: [
          {
            name: 'r',
            action: 'hold',
            approval: { approvers: { groups: ['sre'] }, timeout: '1000h' },
            match: { target: 'api', http: { methods: ['POST'] } },
          },
        ],
      }),
    );
    expect(errors).toEqual([expect.objectContaining({ path: 'spec.rules[0].approval.timeout', message: expect.stringContaining('576h') })]);
  });
});
