// crds/approvalrequest.yaml compiled with ajv exactly as common/policy/schema.ts compiles the
// AccessPolicy CRD, and checked against objects shaped like the ones the webhooks produce.
import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import YAML from 'yaml';
import { findRepoRoot, toAjvSchema } from '../../common/policy/schema';

type Schema = Record<string, unknown>;
const crd = YAML.parse(fs.readFileSync(path.join(findRepoRoot(), 'crds', 'approvalrequest.yaml'), 'utf8')) as {
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; shortNames: string[] };
    versions: Array<{
      name: string;
      subresources?: Schema;
      additionalPrinterColumns: Array<{ name: string; jsonPath: string }>;
      schema: { openAPIV3Schema: Schema };
    }>;
  };
};
const version = crd.spec.versions[0];
const schema = version.schema.openAPIV3Schema;

function compile(): (doc: unknown) => string[] {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && Math.abs(n) < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d{2}-\d{2}T/.test(s) });
  const validate = ajv.compile(toAjvSchema(schema) as Schema);
  return (doc) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`));
}
const check = compile();

function sample(): Record<string, any> {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'ApprovalRequest',
    metadata: { name: '0123456789abcdef01234567', namespace: 'agents' },
    spec: {
      policy: 'agents/support-agent',
      rule: 'deletes-need-approval',
      target: 'crm',
      operation: { kind: 'sql', display: 'DELETE FROM orders WHERE id = 1', digest: 'ab'.repeat(32) },
      approvers: { users: [], groups: ['sre'] },
      required: 1,
      expiresAt: '2026-03-01T12:10:00Z',
      requester: { subject: 'system:serviceaccount:agents:support-agent', groups: ['system:serviceaccounts'] },
      onBehalfOf: { subject: 'user@example.com', groups: [] },
    },
  };
}

test('names, scope, subresource and printer columns', () => {
  expect(crd.metadata.name).toBe('approvalrequests.agentwarden.io');
  expect(crd.spec).toMatchObject({
    group: 'agentwarden.io',
    scope: 'Namespaced',
    names: { kind: 'ApprovalRequest', plural: 'approvalrequests' },
  });
  expect(crd.spec.names.shortNames).toEqual(expect.arrayContaining(['ar', 'approval']));
  expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
  expect(version.additionalPrinterColumns.map((c) => c.name)).toEqual(
    expect.arrayContaining(['State', 'Rule', 'Requester', 'Age', 'Expires']),
  );
  const spec = (schema.properties as Schema).spec as Schema;
  expect(spec['x-kubernetes-validations']).toEqual([expect.objectContaining({ rule: 'self == oldSelf' })]);
});

test('every field has a description (metadata excepted: the API server owns it)', () => {
  const missing: string[] = [];
  const walk = (node: Schema, at: string): void => {
    if (at !== '.metadata' && typeof node.description !== 'string') missing.push(at || '(root)');
    for (const [k, v] of Object.entries((node.properties as Record<string, Schema>) ?? {})) walk(v, `${at}.${k}`);
    if (node.items && (node.items as Schema).type === 'object') walk(node.items as Schema, `${at}[]`);
  };
  walk(schema, '');
  expect(missing).toEqual([]);
});

test('a new request and a decided one validate', () => {
  expect(check(sample())).toEqual([]);
  const decided = sample();
  decided.status = {
    state: 'approved',
    decisions: [{ by: 'alice', groups: ['sre'], verdict: 'approve', reason: 'ok', at: '2026-03-01T12:01:00.123Z' }],
    finalReason: 'approved by alice (alice: ok)',
    conditions: [
      {
        type: 'Decided',
        status: 'True',
        reason: 'Approved',
        message: 'approved by alice',
        lastTransitionTime: '2026-03-01T12:01:00.123Z',
        observedGeneration: 1,
      },
    ],
  };
  expect(check(decided)).toEqual([]);
  // a freshly created object: requester not yet stamped is a schema error (the webhook must run)
  const unstamped = sample();
  delete unstamped.spec.requester;
  expect(check(unstamped)).toEqual(["/spec must have required property 'requester'"]);
  // a held MCP tool call (issue 13)
  const mcp = sample();
  mcp.spec.operation.kind = 'mcp';
  expect(check(mcp)).toEqual([]);
});

test('malformed objects are refused with the field named', () => {
  const cases: Array<[(o: Record<string, any>) => void, string]> = [
    [(o) => (o.spec.operation.digest = 'xyz'), '/spec/operation/digest must match pattern'],
    [(o) => (o.spec.operation.kind = 'grpc'), '/spec/operation/kind must be equal to one of the allowed values'],
    [(o) => (o.spec.required = 0), '/spec/required must be >= 1'],
    [(o) => (o.spec.approver = { users: ['x'] }), '/spec must NOT have additional properties'],
    [(o) => (o.status = { state: 'maybe' }), '/status/state must be equal to one of the allowed values'],
    [
      (o) => (o.status = { decisions: [{ by: 'a', verdict: 'yes' }] }),
      '/status/decisions/0/verdict must be equal to one of the allowed values',
    ],
    [(o) => (o.spec.expiresAt = 'tomorrow'), '/spec/expiresAt must match format "date-time"'],
  ];
  for (const [mutate, msg] of cases) {
    const o = sample();
    mutate(o);
    expect(check(o).join('\n')).toContain(msg);
  }
});
