import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { PATTERN_DESCRIPTIONS } from './ajv-errors';
import { findRepoRoot, loadCrdSchema, validateAccessPolicy } from './schema';
import type { PolicyError } from './errors';
import type { AccessPolicy } from './types';

const root = findRepoRoot();

function minimal(): Record<string, any> {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'support-agent', namespace: 'agents' },
    spec: {
      targets: [{ name: 'crm', postgres: { host: 'crm-db.data.svc', database: 'crm', credentialsSecret: 'crm-db', listenPort: 15432 } }],
    },
  };
}

function errorsOf(doc: unknown): PolicyError[] {
  const r = validateAccessPolicy(doc);
  if (r.ok) throw new Error('expected the document to be invalid');
  return r.errors;
}

function policyOf(doc: unknown): AccessPolicy {
  const r = validateAccessPolicy(doc);
  if (!r.ok) throw new Error(`expected a valid document, got ${JSON.stringify(r.errors)}`);
  return r.policy;
}

describe('validateAccessPolicy: schema', () => {
  test('the example policy is valid', () => {
    const doc = YAML.parse(fs.readFileSync(path.join(root, 'examples/policy.yaml'), 'utf8'));
    const policy = policyOf(doc);
    expect(policy.metadata.name).toBe('support-agent');
    expect(policy.spec.targets.map((t) => t.name)).toEqual(['crm', 'openai']);
  });

  test('applies the CRD defaults to a copy and leaves the input alone', () => {
    const doc = minimal();
    doc.spec.rules = [
      { name: 'deletes', action: 'hold', approval: { approvers: { groups: ['sre'] } }, match: { sql: { statements: ['DELETE'] } } },
    ];
    doc.spec.masking = [{ name: 'pii', detectors: ['email'] }];
    doc.spec.audit = {};
    const before = structuredClone(doc);
    const policy = policyOf(doc);
    expect(doc).toEqual(before);
    expect(policy.spec.defaultAction).toBe('deny');
    expect(policy.spec.targets[0].postgres).toMatchObject({ port: 5432, tls: 'require' });
    expect(policy.spec.targets[0].postgres?.unparseable).toBeUndefined();
    expect(policy.spec.rules?.[0].approval?.count).toBe(1);
    expect(policy.spec.masking?.[0].strategy).toBe('redact');
    expect(policy.spec.audit?.payloads).toBe(false);
  });

  test('explicit values win over defaults', () => {
    const doc = minimal();
    doc.spec.defaultAction = 'allow';
    doc.spec.targets[0].postgres.tls = 'verify-full';
    expect(policyOf(doc).spec.defaultAction).toBe('allow');
    expect(policyOf(doc).spec.targets[0].postgres?.tls).toBe('verify-full');
  });

  test('rejects unknown fields everywhere, with a hint for typos', () => {
    const doc = minimal();
    doc.spec.targets[0].postgres.hots = 'x';
    doc.spec.foo = 1;
    doc.specs = {};
    const errors = errorsOf(doc);
    expect(errors).toContainEqual({
      path: 'spec.targets[0].postgres',
      field: 'hots',
      message: 'unknown field "hots" (did you mean "host"?)',
    });
    expect(errors).toContainEqual(
      expect.objectContaining({ path: 'spec', field: 'foo', message: expect.stringMatching(/^unknown field "foo"/) }),
    );
    expect(errors).toContainEqual(
      expect.objectContaining({ path: '', field: 'specs', message: 'unknown field "specs" (did you mean "spec"?)' }),
    );
  });

  test('names a missing required field', () => {
    const doc = minimal();
    delete doc.spec.targets[0].postgres.host;
    expect(errorsOf(doc)).toEqual([{ path: 'spec.targets[0].postgres', field: 'host', message: 'required field "host" is missing' }]);
  });

  test('checks apiVersion, kind and metadata.name', () => {
    const doc = minimal();
    doc.apiVersion = 'agentwarden.io/v1';
    doc.kind = 'AccessPolcy';
    doc.metadata.name = 'Support_Agent';
    const errors = errorsOf(doc);
    expect(errors).toContainEqual({ path: 'apiVersion', message: 'must be agentwarden.io/v1alpha1 (got "agentwarden.io/v1")' });
    expect(errors).toContainEqual({ path: 'kind', message: 'must be AccessPolicy (got "AccessPolcy"; did you mean "AccessPolicy"?)' });
    expect(errors).toContainEqual(
      expect.objectContaining({ path: 'metadata.name', message: expect.stringMatching(/^must be a Kubernetes object name/) }),
    );
    delete doc.metadata.name;
    expect(errorsOf(doc)).toContainEqual({ path: 'metadata', field: 'name', message: 'required field "name" is missing' });
  });

  test('lists the allowed statement kinds for a bad one', () => {
    const doc = minimal();
    doc.spec.rules = [
      { name: 'a', action: 'deny', match: { sql: { statements: ['DROP'] } } },
      { name: 'b', action: 'deny', match: { sql: { statements: ['DROP'] } } },
      { name: 'c', action: 'deny', match: { sql: { statements: ['select'] } } },
    ];
    const [e] = errorsOf(doc);
    expect(e.path).toBe('spec.rules[2].match.sql.statements[0]');
    expect(e.message).toMatch(
      /^must be one of: SELECT, INSERT, UPDATE, DELETE, MERGE, COPY, DROP, .*, DYNAMIC, OTHER, READ, WRITE, DDL, DCL, ADMIN, FILE \(got "select"; did you mean "SELECT"\?\)$/,
    );
  });

  test.each([
    ['spec.defaultAction', (d: any) => (d.spec.defaultAction = 'block'), 'must be one of: allow, deny (got "block")'],
    [
      'spec.targets[0].postgres.tls',
      (d: any) => (d.spec.targets[0].postgres.tls = 'on'),
      'must be one of: disable, prefer, require, verify-full (got "on")',
    ],
    [
      'spec.targets[0].postgres.listenPort',
      (d: any) => (d.spec.targets[0].postgres.listenPort = 70000),
      'must be between 1 and 65535 (got 70000)',
    ],
    ['spec.targets[0].postgres.port', (d: any) => (d.spec.targets[0].postgres.port = 0), 'must be between 1 and 65535 (got 0)'],
    [
      'spec.targets[0].postgres.listenPort',
      (d: any) => (d.spec.targets[0].postgres.listenPort = '15432'),
      'must be a whole number (got "15432")',
    ],
    [
      'spec.targets[0].postgres.database',
      (d: any) => (d.spec.targets[0].postgres.database = null),
      'must be a string (got an empty value)',
    ],
    ['spec.targets', (d: any) => (d.spec.targets = []), 'must list at least one item'],
    ['spec.targets', (d: any) => (d.spec.targets = { crm: {} }), 'must be a list (got a mapping)'],
    [
      'spec.targets[0].name',
      (d: any) => (d.spec.targets[0].name = 'CRM'),
      'must be a lowercase name of letters, digits and "-", starting and ending with a letter or digit, like crm-db (got "CRM")',
    ],
    [
      'spec.targets[0].env',
      (d: any) => (d.spec.targets[0].env = 'DATABASE-URL'),
      'must be an environment variable name: letters, digits and "_", not starting with a digit (got "DATABASE-URL")',
    ],
    [
      'spec.targets[0].postgres.connectTimeout',
      (d: any) => (d.spec.targets[0].postgres.connectTimeout = '10 seconds'),
      'must be a duration like 30s, 10m or 1h30m, in units ms, s, m and h (got "10 seconds")',
    ],
  ])('%s: %s', (pathExpected, mutate, message) => {
    const doc = minimal();
    mutate(doc);
    expect(errorsOf(doc)).toContainEqual({ path: pathExpected, message });
  });

  test('rule, http and masking fields are checked', () => {
    const doc = minimal();
    doc.spec.targets.push({ name: 'openai', http: { baseUrl: 'api.openai.com', auth: { header: 'Bad Header' } } });
    doc.spec.rules = [
      { name: 'r', action: 'block', match: { target: 'openai', http: { methods: ['post'], paths: ['v1/x'] } }, approval: { count: 9 } },
    ];
    doc.spec.masking = [{ name: 'm', detectors: ['email', 'email', 'passport'], strategy: 'blur' }];
    const byPath = Object.fromEntries(errorsOf(doc).map((e) => [e.path, e.message]));
    expect(byPath['spec.targets[1].http.baseUrl']).toMatch(/^must be an http:\/\/ or https:\/\/ URL/);
    expect(byPath['spec.targets[1].http.auth.header']).toMatch(/^must be an HTTP header name/);
    expect(byPath['spec.rules[0].action']).toBe('must be one of: allow, deny, hold (got "block")');
    expect(byPath['spec.rules[0].match.http.methods[0]']).toBe('must be an upper-case HTTP method, like GET or POST (got "post")');
    expect(byPath['spec.rules[0].match.http.paths[0]']).toMatch(/^must be a path starting with "\/"/);
    expect(byPath['spec.rules[0].approval.count']).toBe('must be between 1 and 5 (got 9)');
    expect(byPath['spec.masking[0].detectors']).toBe('lists "email" twice (items [0] and [1]); each value may appear once');
    expect(byPath['spec.masking[0].detectors[2]']).toMatch(/^must be one of: credit-card, email, us-ssn, phone, iban, secret-key/);
    expect(byPath['spec.masking[0].strategy']).toBe('must be one of: redact, last4, hash (got "blur")');
  });

  test('a document that is not a mapping says so', () => {
    expect(errorsOf('hello')).toEqual([{ path: '', message: 'must be a mapping (key: value) (got "hello")' }]);
    expect(errorsOf(undefined)).toEqual([{ path: '', message: 'must be a mapping (key: value) (got an empty value)' }]);
  });

  test('map keys that are not identifiers are bracketed in paths', () => {
    const doc = minimal();
    doc.spec.podSelector = { matchLabels: { 'app.kubernetes.io/name': 5 } };
    expect(errorsOf(doc)).toContainEqual({
      path: 'spec.podSelector.matchLabels[app.kubernetes.io/name]',
      message: 'must be a string (got 5)',
    });
  });

  test('status written by the operator validates', () => {
    const doc = minimal();
    doc.status = {
      observedGeneration: 3,
      targetCount: 1,
      governedPods: 2,
      outdatedPods: ['agent-1'],
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Rendered',
          message: 'ok',
          lastTransitionTime: '2024-01-31T12:00:00Z',
          observedGeneration: 3,
        },
      ],
    };
    policyOf(doc);
    doc.status.conditions[0].lastTransitionTime = 'yesterday';
    expect(errorsOf(doc)).toEqual([
      {
        path: 'status.conditions[0].lastTransitionTime',
        message: 'must be an RFC 3339 timestamp, like 2024-01-31T12:00:00Z (got "yesterday")',
      },
    ]);
  });
});

describe('findRepoRoot', () => {
  test('finds the package from the source tree and from dist/', () => {
    expect(fs.existsSync(path.join(root, 'crds/accesspolicy.yaml'))).toBe(true);
    expect(findRepoRoot(path.join(root, 'dist/common/policy'))).toBe(root);
  });

  test('fails clearly outside the package', () => {
    expect(() => findRepoRoot('/')).toThrow(/cannot find the agent-warden package root/);
  });
});

// ---- the CRD itself

type Schema = Record<string, any>;

function walk(schema: Schema, at: string, visit: (s: Schema, at: string) => void): void {
  visit(schema, at);
  for (const [k, child] of Object.entries<Schema>(schema.properties ?? {})) walk(child, at === '' ? k : `${at}.${k}`, visit);
  if (schema.items) walk(schema.items, `${at}[]`, visit);
  if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties, `${at}{}`, visit);
}

describe('crds/accesspolicy.yaml', () => {
  const crd = YAML.parse(fs.readFileSync(path.join(root, 'crds/accesspolicy.yaml'), 'utf8'));
  const schema = loadCrdSchema() as Schema;

  test('is a namespaced v1 CRD for accesspolicies.agentwarden.io with status and printer columns', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(crd.metadata.name).toBe('accesspolicies.agentwarden.io');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toMatchObject({
      kind: 'AccessPolicy',
      plural: 'accesspolicies',
      shortNames: ['ap', 'awp'],
      categories: ['agentwarden'],
    });
    const [v] = crd.spec.versions;
    expect(v).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
    expect(v.additionalPrinterColumns.map((c: Schema) => c.name)).toEqual(['Ready', 'Reason', 'Default', 'Targets', 'Governed', 'Age']);
  });

  test('every property has a type and a description; objects are structural', () => {
    const problems: string[] = [];
    walk(schema, '', (s, at) => {
      if (s.type === undefined && !s['x-kubernetes-int-or-string'] && !s['x-kubernetes-preserve-unknown-fields'])
        problems.push(`${at}: no type`);
      // metadata is the API server's: a CRD may not even describe it
      const exempt = at.endsWith('[]') || at.endsWith('{}') || at === 'metadata';
      if (!exempt && !s.description) problems.push(`${at || '(root)'}: no description`);
      if (s.properties && s.additionalProperties !== undefined) problems.push(`${at}: properties and additionalProperties together`);
      if (s.type === 'array' && !s.items) problems.push(`${at}: array without items`);
      for (const k of ['allOf', 'anyOf', 'oneOf', 'not']) if (s[k]) problems.push(`${at}: ${k} (keep to CEL rules)`);
    });
    expect(problems).toEqual([]);
  });

  test('root metadata is left to the API server, as structural schemas require', () => {
    expect(schema.properties.metadata).toEqual({ type: 'object' });
  });

  test('everything CEL rules may iterate or compare in spec is bounded', () => {
    const problems: string[] = [];
    walk(schema.properties.spec, 'spec', (s, at) => {
      if (s.type === 'array' && s.maxItems === undefined) problems.push(`${at}: no maxItems`);
      if (s.type === 'string' && s.maxLength === undefined && s.enum === undefined) problems.push(`${at}: no maxLength`);
      if (s.type === 'object' && s.additionalProperties && s.maxProperties === undefined) problems.push(`${at}: no maxProperties`);
    });
    expect(problems).toEqual([]);
  });

  test('keyed lists have required keys and every default satisfies its own schema', () => {
    walk(schema, '', (s, at) => {
      if (s['x-kubernetes-list-type'] === 'map') {
        for (const key of s['x-kubernetes-list-map-keys'])
          expect({ at, required: s.items.required }).toEqual({ at, required: expect.arrayContaining([key]) });
      }
      if (s.default !== undefined) {
        if (s.enum) expect(s.enum).toContain(s.default);
        expect(typeof s.default === 'number' ? (s.type === 'integer' ? 'integer' : 'number') : typeof s.default).toBe(s.type);
      }
    });
  });

  test('every pattern compiles and has words for its error message', () => {
    walk(schema, '', (s, at) => {
      if (s.pattern === undefined) return;
      expect(() => new RegExp(s.pattern, 'u')).not.toThrow();
      expect({ at, words: PATTERN_DESCRIPTIONS[s.pattern] }).toEqual({ at, words: expect.any(String) });
    });
  });

  test('statement kinds and detector names are the agreed lists', () => {
    const spec = schema.properties.spec.properties;
    expect(spec.rules.items.properties.match.properties.sql.properties.statements.items.enum.join(' ')).toBe(
      'SELECT INSERT UPDATE DELETE MERGE COPY DROP TRUNCATE ALTER CREATE GRANT REVOKE DO CALL PREPARE EXECUTE DEALLOCATE SET RESET SHOW BEGIN COMMIT ROLLBACK SAVEPOINT RELEASE LOCK VACUUM ANALYZE CLUSTER REINDEX REFRESH COMMENT SECURITY_LABEL LISTEN NOTIFY UNLISTEN DISCARD EXPLAIN DECLARE FETCH MOVE CLOSE CHECKPOINT LOAD IMPORT REASSIGN DYNAMIC OTHER READ WRITE DDL DCL ADMIN FILE',
    );
    expect(spec.masking.items.properties.detectors.items.enum).toEqual(['credit-card', 'email', 'us-ssn', 'phone', 'iban', 'secret-key']);
    expect(spec.defaultAction).toMatchObject({ enum: ['allow', 'deny'], default: 'deny' });
  });
});
