import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAccessPolicy, loadPolicyFile, parsePolicyYaml, PolicyLoadError, type PolicyDocument } from './load';

const POLICY = `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: one
spec:
  targets:
    - name: crm
      postgres:
        host: 127.0.0.1
        database: crm
        credentialsSecret: crm-db
        listenPort: 15432
`;

function only(docs: PolicyDocument[]): PolicyDocument {
  expect(docs).toHaveLength(1);
  return docs[0];
}

describe('parsePolicyYaml', () => {
  test('a valid document, with defaults applied', () => {
    const doc = only(parsePolicyYaml(POLICY, 'p.yaml'));
    expect(doc).toMatchObject({ source: 'p.yaml', index: 0, line: 1, name: 'one', status: 'valid' });
    if (doc.status === 'valid') expect(doc.policy.spec.defaultAction).toBe('deny');
  });

  test('errors carry the line of the offending field', () => {
    const text = POLICY.replace('        host: 127.0.0.1\n', '        hots: 127.0.0.1\n').replace('listenPort: 15432', 'listenPort: 99999');
    const doc = only(parsePolicyYaml(text, 'p.yaml'));
    expect(doc.status).toBe('invalid');
    if (doc.status !== 'invalid') return;
    expect(doc.errors).toEqual([
      { path: 'spec.targets[0].postgres', field: 'host', message: 'required field "host" is missing', line: 8 },
      { path: 'spec.targets[0].postgres', field: 'hots', message: 'unknown field "hots" (did you mean "host"?)', line: 9 },
      { path: 'spec.targets[0].postgres.listenPort', message: 'must be between 1 and 65535 (got 99999)', line: 12 },
    ]);
  });

  test('several documents; other kinds are skipped; empty documents ignored', () => {
    const second = POLICY.replace('name: one', 'name: two').replace('name: crm', 'name: CRM');
    const deployment = 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n';
    const docs = parsePolicyYaml(`---\n${POLICY}---\n${second}---\n${deployment}---\n# nothing here\n`, 'all.yaml');
    expect(docs.map((d) => [d.index, d.name, d.status, d.line])).toEqual([
      [0, 'one', 'valid', 2],
      [1, 'two', 'invalid', 15],
      [2, 'web', 'skipped', 28],
    ]);
    expect(docs[1].status === 'invalid' && docs[1].errors[0]).toMatchObject({ path: 'spec.targets[0].name', line: 21 });
    expect(docs[2].status === 'skipped' && docs[2].kind).toBe('Deployment');
  });

  test('a wrong kind in our API group is an error, not skipped', () => {
    const doc = only(parsePolicyYaml(POLICY.replace('kind: AccessPolicy', 'kind: AccessPolicies'), 'p.yaml'));
    expect(doc.status === 'invalid' && doc.errors[0]).toMatchObject({
      path: 'kind',
      message: expect.stringMatching(/^must be AccessPolicy/),
      line: 2,
    });
  });

  test('YAML syntax errors are reported with a line and column', () => {
    const text = POLICY.replace('    - name: crm\n', '    - name: crm\n   bad: [\n');
    const doc = only(parsePolicyYaml(text, 'p.yaml'));
    expect(doc.status).toBe('invalid');
    if (doc.status !== 'invalid') return;
    expect(doc.errors[0].message).toMatch(/^YAML syntax error at line \d+, column \d+: /);
    expect(doc.errors[0].line).toBeGreaterThanOrEqual(8);
  });

  test('duplicate keys are a YAML error (the later one would silently win)', () => {
    const doc = only(
      parsePolicyYaml(POLICY.replace('        database: crm\n', '        database: crm\n        database: other\n'), 'p.yaml'),
    );
    expect(doc.status === 'invalid' && doc.errors[0]).toMatchObject({
      message: expect.stringMatching(/^YAML syntax error at line 11, column 9: .*unique/i),
      line: 11,
    });
  });

  test('an empty file has no document', () => {
    expect(only(parsePolicyYaml('# just a comment\n', 'e.yaml'))).toMatchObject({
      status: 'invalid',
      errors: [{ path: '', message: 'no YAML document found' }],
    });
  });

  test('alias bombs are refused', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      ...Array.from({ length: 8 }, (_, i) => `${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`),
    ].join('\n');
    const doc = only(parsePolicyYaml(bomb, 'bomb.yaml'));
    expect(doc.status === 'invalid' && doc.errors[0].message).toMatch(/^cannot read YAML: .*alias/i);
  });
});

describe('loading files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-policy-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('loadPolicyFile names the file as the source', async () => {
    const file = path.join(dir, 'p.yaml');
    fs.writeFileSync(file, POLICY);
    expect((await loadPolicyFile(file))[0]).toMatchObject({ source: file, status: 'valid' });
  });

  test('loadAccessPolicy returns the one policy or throws with every error', async () => {
    const good = path.join(dir, 'good.yaml');
    fs.writeFileSync(good, POLICY);
    expect((await loadAccessPolicy(good)).metadata.name).toBe('one');

    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, POLICY.replace('listenPort: 15432', 'listenPort: 15000'));
    const err = await loadAccessPolicy(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyLoadError);
    expect((err as PolicyLoadError).code).toBe('POLICY_INVALID');
    expect((err as PolicyLoadError).message).toContain(
      "spec.targets[0].postgres.listenPort: port 15000 is used by the sidecar's admin API; choose another listenPort (line 12)",
    );

    const two = path.join(dir, 'two.yaml');
    fs.writeFileSync(two, `${POLICY}---\n${POLICY.replace('name: one', 'name: two')}`);
    await expect(loadAccessPolicy(two)).rejects.toThrow('expected exactly one AccessPolicy, found 2');

    await expect(loadAccessPolicy(path.join(dir, 'missing.yaml'))).rejects.toThrow(/ENOENT/);
  });
});
