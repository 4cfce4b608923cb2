// spec.identity in the CRD: the offline validator (ajv, the CRD's own schema) and the CRD's CEL
// rules (evaluated as the API server would) accept good identity blocks and reject bad ones.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { loadCrdSchema, validateAccessPolicy } from '../policy/schema';
import { identityWarnings } from './spec';

function policy(identity: unknown): Record<string, unknown> {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: {
      targets: [{ name: 'openai', http: { baseUrl: 'https://api.openai.com', credentialsSecret: 'openai' } }],
      identity,
    },
  };
}

function celFailures(docs: unknown[]): Array<Array<{ path: string; message: string }>> {
  const out = execFileSync(process.execPath, [path.join(__dirname, '../../test/support/common/cel-eval.mjs')], {
    input: JSON.stringify({ crd: loadCrdSchema(), docs }),
    encoding: 'utf8',
  });
  const r = JSON.parse(out);
  expect(r.parseErrors).toEqual([]);
  return r.results;
}

const good = { issuer: 'https://kubernetes.default.svc.cluster.local', audiences: ['agent-warden'] };

test('a minimal identity block is valid and gets its defaults', () => {
  const r = validateAccessPolicy(policy(good));
  expect(r.ok).toBe(true);
  if (r.ok) expect(r.policy.spec.identity).toEqual({ ...good, subjectClaim: 'sub', groupsClaim: 'groups', clockSkew: '30s' });
  const full = {
    ...good,
    jwksUri: 'https://idp.example.com/keys',
    subjectClaim: 'email',
    groupsClaim: 'roles',
    clockSkew: '5m',
    maxTokenAge: '1h',
  };
  expect(validateAccessPolicy(policy(full)).ok).toBe(true);
  expect(celFailures([policy(good), policy(full)])).toEqual([[], []]);
});

test.each([
  ['no audiences', { issuer: good.issuer }, 'audiences'],
  ['empty audiences', { ...good, audiences: [] }, 'audiences'],
  ['issuer not a URL', { ...good, issuer: 'kubernetes' }, 'issuer'],
  ['bad clockSkew', { ...good, clockSkew: 'soon' }, 'clockSkew'],
  ['unknown field', { ...good, audience: 'x' }, 'audience'],
])('the offline validator rejects %s, naming the field', (_name, identity, field) => {
  const r = validateAccessPolicy(policy(identity));
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.errors.map((e) => `${e.path} ${e.field ?? ''}`).join('\n')).toContain(field);
});

test('the CEL rules refuse http issuers, http jwksUri, clockSkew over 5m and a zero maxTokenAge', () => {
  const results = celFailures([
    policy({ ...good, issuer: 'http://idp.example.com' }),
    policy({ ...good, jwksUri: 'http://idp.example.com/keys' }),
    policy({ ...good, clockSkew: '6m' }),
    policy({ ...good, maxTokenAge: '0s' }),
  ]);
  expect(results.map((r) => r.map((f) => `${f.path}: ${f.message}`))).toEqual([
    ['spec.identity.issuer: the issuer must be an https:// URL'],
    ['spec.identity.jwksUri: jwksUri must be an https:// URL'],
    ['spec.identity.clockSkew: must be at most 5m'],
    ['spec.identity.maxTokenAge: must be longer than zero'],
  ]);
});

describe('spec.identity.kubernetes', () => {
  const kube = { kubernetes: { audiences: ['agent-warden'] } };

  test('is valid alone, with clockSkew and maxTokenAge, for the offline validator and the CEL rules', () => {
    const r = validateAccessPolicy(policy(kube));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.policy.spec.identity).toEqual({ ...kube, subjectClaim: 'sub', groupsClaim: 'groups', clockSkew: '30s' });
    const full = { ...kube, clockSkew: '1m', maxTokenAge: '30m' };
    expect(validateAccessPolicy(policy(full)).ok).toBe(true);
    // the API server applies the defaults before CEL runs: evaluate with them, as it does
    expect(celFailures([policy({ ...kube, subjectClaim: 'sub', groupsClaim: 'groups' }), policy(full)])).toEqual([[], []]);
  });

  test.each([
    ['both issuer and kubernetes', { ...good, ...kube }, 'exactly one'],
    ['top-level audiences with kubernetes', { ...kube, audiences: ['x'] }, 'kubernetes.audiences'],
    ['jwksUri with kubernetes', { ...kube, jwksUri: 'https://a.example/keys' }, 'jwksUri'],
    ['another subjectClaim', { ...kube, subjectClaim: 'email' }, 'subjectClaim'],
    ['another groupsClaim', { ...kube, groupsClaim: 'roles' }, 'groupsClaim'],
    ['the API server audience', { kubernetes: { audiences: ['https://kubernetes.default.svc.cluster.local'] } }, 'own audience'],
    ['the api audience', { kubernetes: { audiences: ['api'] } }, 'own audience'],
    ['no audiences', { kubernetes: { audiences: [] } }, 'audiences'],
    ['an unknown field', { kubernetes: { audiences: ['x'], issuer: 'https://a.example' } }, 'issuer'],
    ['neither', { clockSkew: '30s' }, 'exactly one'],
  ])('warden validate refuses %s, naming the field', (_name, identity, words) => {
    const r = validateAccessPolicy(policy(identity));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => `${e.path} ${e.field ?? ''} ${e.message}`).join('\n')).toContain(words);
  });

  test('the CEL rules refuse the same as the API server would', () => {
    const withDefaults = (i: Record<string, unknown>): Record<string, unknown> =>
      policy({ subjectClaim: 'sub', groupsClaim: 'groups', ...i });
    const results = celFailures([
      withDefaults({ ...good, ...kube }),
      withDefaults({ clockSkew: '30s' }),
      withDefaults({ ...kube, audiences: ['x'] }),
      withDefaults({ ...kube, jwksUri: 'https://a.example/keys' }),
      withDefaults({ ...kube, subjectClaim: 'email' }),
      withDefaults({ kubernetes: { audiences: ['agent-warden', 'https://kubernetes.default.svc'] } }),
      withDefaults({ issuer: good.issuer }),
    ]);
    expect(results.map((r) => r.map((f) => `${f.path}: ${f.message}`))).toEqual([
      [expect.stringContaining('spec.identity: set exactly one of issuer'), expect.stringContaining('jwksUri does not apply')],
      [expect.stringContaining('spec.identity: set exactly one of issuer')],
      [expect.stringContaining('spec.identity: with kubernetes, list the audiences under kubernetes.audiences')],
      [expect.stringContaining('spec.identity: with kubernetes, list the audiences under kubernetes.audiences')],
      [expect.stringContaining('spec.identity: with kubernetes, the subject is always sub')],
      [expect.stringMatching(/^spec\.identity\.kubernetes\.audiences(\[1\])?: must be an audience of your own/)],
      ['spec.identity: audiences is required with issuer'],
    ]);
  });
});

test('warden validate warns about audiences other relying parties accept (RT14-12)', () => {
  expect(identityWarnings({ kubernetes: { audiences: ['agent-warden'] } })).toEqual([]);
  expect(identityWarnings({ issuer: 'https://a.example', audiences: ['vault'] })).toEqual([]);
  const w = identityWarnings({
    kubernetes: { audiences: ['agent-warden', 'sts.amazonaws.com', 'vault', '//iam.googleapis.com/projects/1/x'] },
  });
  expect(w.map((x) => x.slice(0, 38))).toEqual([
    'spec.identity.kubernetes.audiences[1]:',
    'spec.identity.kubernetes.audiences[2]:',
    'spec.identity.kubernetes.audiences[3]:',
  ]);
});
