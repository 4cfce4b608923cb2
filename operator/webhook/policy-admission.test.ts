import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ACCESS_POLICY, API_VERSION } from '../../common/k8s/names';
import { findRepoRoot } from '../../common/policy/schema';
import { createPolicyValidator } from './policy-admission';
import { admissionReview, requestType, REVIEW_UID } from '../../test/support/operator/admission-review';
import type { AdmissionResponse, AdmissionReview } from './types';

const example = YAML.parse(fs.readFileSync(path.join(findRepoRoot(), 'examples', 'policy.yaml'), 'utf8')) as Record<string, unknown>;

/** The object as the API server sends it: server-set metadata and a status included. */
function asStored(doc: Record<string, unknown>): Record<string, unknown> {
  const meta = doc.metadata as Record<string, unknown>;
  return {
    ...doc,
    metadata: {
      ...meta,
      uid: '2c1f7f55-8d2e-4b1a-9c1e-5a4f0e3d2b1c',
      resourceVersion: '918273',
      generation: 2,
      creationTimestamp: '2025-05-01T09:00:00Z',
      managedFields: [
        {
          manager: 'kubectl-client-side-apply',
          operation: 'Update',
          apiVersion: 'agentwarden.io/v1alpha1',
          time: '2025-05-01T09:00:00Z',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:spec': {} },
        },
      ],
    },
    status: { observedGeneration: 1, conditions: [] },
  };
}

const ALICE = { username: 'alice@example.com', groups: ['platform', 'system:authenticated'] };

function review(operation: 'CREATE' | 'UPDATE' | 'DELETE', object: unknown, subResource?: string): AdmissionReview {
  return admissionReview({
    ...requestType(API_VERSION, ACCESS_POLICY.kind, ACCESS_POLICY.plural),
    subResource,
    name: 'support-agent',
    namespace: 'agents',
    operation,
    userInfo: ALICE,
    object: operation === 'DELETE' ? null : object,
    oldObject: operation === 'CREATE' ? null : object,
  });
}

const validate = (r: AdmissionReview): AdmissionResponse => createPolicyValidator()(JSON.parse(JSON.stringify(r))) as AdmissionResponse;

describe('AccessPolicy validating webhook', () => {
  it('admits the example policy as the API server stores it (server metadata, status)', () => {
    expect(validate(review('CREATE', asStored(example)))).toEqual({ uid: REVIEW_UID, allowed: true });
    expect(validate(review('UPDATE', asStored(example))).allowed).toBe(true);
  });

  it('rejects what the schema and the semantic checks catch, naming each field', () => {
    const bad = structuredClone(asStored(example)) as { spec: Record<string, any> };
    bad.spec.defaultAction = 'block';
    bad.spec.rules[0].match.target = 'crn';
    bad.spec.masking[0].columns = ['customers.'];
    bad.spec.podSelector = { matchExpressions: [{ key: 'app', operator: 'In' }] };
    const res = validate(review('UPDATE', bad));
    expect(res.allowed).toBe(false);
    expect(res.status).toMatchObject({ code: 422, reason: 'Invalid' });
    const msg = res.status!.message!;
    expect(msg).toMatch(/^AccessPolicy "support-agent" is invalid: /);
    expect(msg).toContain('spec.defaultAction: must be one of: allow, deny');
    expect(msg).toContain('spec.rules[0].match.target');
    expect(msg).toContain('spec.masking[0].columns[0]');
    expect(msg).toContain('spec.podSelector.matchExpressions[0].values');
  });

  it('rejects an object that is not an AccessPolicy at all', () => {
    const res = validate(review('CREATE', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }));
    expect(res.allowed).toBe(false);
    expect(res.status!.message).toMatch(/kind|apiVersion|spec/);
  });

  it('allows DELETE and status-subresource writes without judging them', () => {
    expect(validate(review('DELETE', null)).allowed).toBe(true);
    const broken = { ...asStored(example), spec: { targets: 'nope' } };
    expect(validate(review('UPDATE', broken, 'status')).allowed).toBe(true);
  });

  it('caps a long error list so the message stays readable', () => {
    const many = structuredClone(asStored(example)) as { spec: Record<string, any> };
    many.spec.rules = Array.from({ length: 30 }, (_, i) => ({ name: `r${i}`, action: 'nope', match: {} }));
    const msg = validate(review('CREATE', many)).status!.message!;
    expect(msg).toMatch(/\.\.\. and \d+ more$/);
  });
});
