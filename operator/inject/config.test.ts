import { InjectorConfigError, resolveInjectorConfig } from './config';

describe('resolveInjectorConfig', () => {
  it('fills in defaults; the lockdown image defaults to the sidecar image', () => {
    expect(resolveInjectorConfig({ image: 'ghcr.io/agent-warden/agent-warden:0.1.0' })).toEqual({
      image: 'ghcr.io/agent-warden/agent-warden:0.1.0',
      imagePullPolicy: 'IfNotPresent',
      resources: { requests: { cpu: '50m', memory: '160Mi' }, limits: { memory: '384Mi' } },
      ports: { admin: 15000, egress: 15001, health: 15021 },
      runAsUser: 1337,
      runAsGroup: 1338,
      lockdownImage: 'ghcr.io/agent-warden/agent-warden:0.1.0',
      lockdownByDefault: false,
      operatorNamespace: 'agent-warden',
      tokenAudience: '',
      tokenExpirationSeconds: 3600,
      otlpEndpoint: undefined,
      otlpProtocol: undefined,
    });
  });

  it('the sidecar user and group: non-zero IDs (root would exempt every root app container from lockdown)', () => {
    expect(resolveInjectorConfig({ image: 'i:1', runAsUser: 1338, runAsGroup: 1338 })).toMatchObject({ runAsUser: 1338, runAsGroup: 1338 });
    expect(() => resolveInjectorConfig({ image: 'i:1', runAsUser: 0 })).toThrow(/runAsUser: must be a non-zero user\/group ID \(got 0\)/);
    expect(() => resolveInjectorConfig({ image: 'i:1', runAsGroup: 0 })).toThrow(/runAsGroup: must be a non-zero/);
    expect(() => resolveInjectorConfig({ image: 'i:1', runAsUser: 1.5 })).toThrow(/runAsUser/);
  });

  it('names every bad field', () => {
    let err: unknown;
    try {
      resolveInjectorConfig({
        image: '',
        imagePullPolicy: 'Sometimes' as 'Always',
        resources: { requests: { cpu: 'lots' }, limits: {} },
        tokenExpirationSeconds: 60,
        otlpProtocol: 'udp',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InjectorConfigError);
    const msg = (err as Error).message;
    for (const field of [
      'image:',
      'imagePullPolicy:',
      'resources.requests.cpu:',
      'tokenExpirationSeconds: must be an integer of at least 600',
      'otlpProtocol:',
    ]) {
      expect(msg).toContain(field);
    }
  });

  it('checks the OTLP headers Secret and CA ConfigMap references, and wants https for them', () => {
    const headers = { name: 'warden-otlp', key: 'headers' };
    expect(
      resolveInjectorConfig({ image: 'i:1', otlpEndpoint: 'https://otlp.example.com', otlpHeadersSecret: headers }).otlpHeadersSecret,
    ).toEqual(headers);
    expect(() => resolveInjectorConfig({ image: 'i:1', otlpEndpoint: 'http://otel:4318', otlpHeadersSecret: headers })).toThrow(
      /otlpHeadersSecret: needs an https:\/\/ otlpEndpoint/,
    );
    expect(() => resolveInjectorConfig({ image: 'i:1', otlpHeadersSecret: headers })).toThrow(/otlpHeadersSecret: needs an https/);
    expect(() =>
      resolveInjectorConfig({ image: 'i:1', otlpEndpoint: 'https://o.example', otlpCaConfigMap: { name: 'x/y', key: '' } }),
    ).toThrow(/otlpCaConfigMap.name: must be a DNS subdomain name.*otlpCaConfigMap.key: must be a Secret\/ConfigMap key/);
    expect(() => resolveInjectorConfig({ image: 'i:1', otlpEndpoint: 'http://otel:4318', otlpClientCertSecret: 'Client_Cert' })).toThrow(
      /otlpClientCertSecret: must be a DNS subdomain name.*otlpClientCertSecret: needs an https/,
    );
    expect(
      resolveInjectorConfig({ image: 'i:1', otlpEndpoint: 'https://o.example', otlpClientCertSecret: 'otlp-client' }).otlpClientCertSecret,
    ).toBe('otlp-client');
  });

  it('refuses otlpProtocol grpc, which the sidecar has no exporter for (it would fail in every pod instead)', () => {
    expect(() => resolveInjectorConfig({ image: 'i:1', otlpProtocol: 'grpc' })).toThrow(
      /otlpProtocol: must be http\/protobuf or http\/json/,
    );
    for (const otlpProtocol of ['http/protobuf', 'http/json'])
      expect(resolveInjectorConfig({ image: 'i:1', otlpProtocol }).otlpProtocol).toBe(otlpProtocol);
  });
});
