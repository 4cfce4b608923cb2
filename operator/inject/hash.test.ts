import type { AccessPolicy } from '../../common/policy/types';
import { fixturePolicies, testConfig } from '../../test/support/operator/inject-fixtures';
import { injectionConfigHash } from './hash';

const [support] = fixturePolicies();
const edit = (f: (p: AccessPolicy) => void): AccessPolicy => {
  const p = structuredClone(support);
  f(p);
  return p;
};

describe('injectionConfigHash', () => {
  const base = injectionConfigHash(testConfig(), support);

  it('is a short stable hex string', () => {
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(injectionConfigHash(testConfig(), structuredClone(support))).toBe(base);
  });

  it.each<[string, () => string]>([
    ['sidecar image', () => injectionConfigHash(testConfig({ image: 'ghcr.io/agent-warden/agent-warden:0.2.0' }), support)],
    ['resources', () => injectionConfigHash(testConfig({ resources: { requests: { cpu: '200m' }, limits: {} } }), support)],
    ['token audience', () => injectionConfigHash(testConfig({ tokenAudience: 'warden' }), support)],
    ['OTLP endpoint', () => injectionConfigHash(testConfig({ otlpEndpoint: 'http://otel:4317' }), support)],
    [
      'OTLP headers Secret',
      () =>
        injectionConfigHash(
          testConfig({ otlpEndpoint: 'https://otlp.example.com', otlpHeadersSecret: { name: 'warden-otlp', key: 'headers' } }),
          support,
        ),
    ],
    [
      'OTLP client certificate Secret',
      () => injectionConfigHash(testConfig({ otlpEndpoint: 'https://otlp.example.com', otlpClientCertSecret: 'otlp-client' }), support),
    ],
    [
      'OTLP CA ConfigMap',
      () =>
        injectionConfigHash(
          testConfig({ otlpEndpoint: 'https://otlp.example.com', otlpCaConfigMap: { name: 'otlp-ca', key: 'ca.crt' } }),
          support,
        ),
    ],
    [
      'policy uid (deleted and re-created)',
      () =>
        injectionConfigHash(
          testConfig(),
          edit((p) => (p.metadata.uid = 'another')),
        ),
    ],
    [
      'a target env var',
      () =>
        injectionConfigHash(
          testConfig(),
          edit((p) => (p.spec.targets[0].env = 'PG_URL')),
        ),
    ],
    [
      'a listen port',
      () =>
        injectionConfigHash(
          testConfig(),
          edit((p) => (p.spec.targets[0].postgres!.listenPort = 15440)),
        ),
    ],
    [
      'a credentials Secret',
      () =>
        injectionConfigHash(
          testConfig(),
          edit((p) => (p.spec.targets[1].http!.credentialsSecret = 'openai-v2')),
        ),
    ],
  ])('changes with the %s', (_name, other) => {
    expect(other()).not.toBe(base);
  });

  it('is unchanged by the OTLP headers/CA settings while they are unset (pods injected before them stay current)', () => {
    // The golden files (golden.test.ts) hold the hashes written before these settings existed.
    expect(
      injectionConfigHash(
        { ...testConfig(), otlpHeadersSecret: undefined, otlpCaConfigMap: undefined, otlpClientCertSecret: undefined },
        support,
      ),
    ).toBe(base);
  });

  it('does not change with rules, masking columns or generation alone: the sidecar hot-reloads those', () => {
    const changed = edit((p) => {
      p.metadata.generation = 42;
      p.spec.rules = [{ name: 'deny-all', action: 'deny', match: {} }];
      p.spec.masking![0].columns = ['customers.email'];
    });
    expect(injectionConfigHash(testConfig(), changed)).toBe(base);
  });
});
