import { OperatorConfigError, parseOperatorConfig } from './config';

function problems(text: string): string[] {
  try {
    parseOperatorConfig(text, 'config.yaml', 'agent-warden');
  } catch (e) {
    if (e instanceof OperatorConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('parseOperatorConfig', () => {
  it('reads the file the chart renders, with defaults filled in', () => {
    const c = parseOperatorConfig(
      `
sidecar:
  image: ghcr.io/agent-warden/agent-warden:0.2.0
  imagePullPolicy: IfNotPresent
  resources:
    requests: {cpu: 50m, memory: 64Mi}
    limits: {memory: 256Mi}
lockdown: true
otlp:
  endpoint: "http://otel-collector.observability:4318"
  protocol: "http/protobuf"
webhook:
  port: 9443
  serviceName: agent-warden
  secretName: agent-warden-webhook-tls
  certMode: cert-manager
approvals:
  ttl: "24h"
`,
      'config.yaml',
      'agent-warden',
    );
    expect(c.injector).toMatchObject({
      image: 'ghcr.io/agent-warden/agent-warden:0.2.0',
      lockdownByDefault: true,
      operatorNamespace: 'agent-warden',
      otlpEndpoint: 'http://otel-collector.observability:4318',
      otlpProtocol: 'http/protobuf',
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    });
    expect(c.webhook).toEqual({
      port: 9443,
      serviceName: 'agent-warden',
      secretName: 'agent-warden-webhook-tls',
      certMode: 'cert-manager',
      mutatingName: 'agent-warden',
      validatingName: 'agent-warden',
    });
    expect(c.approvals.ttlMs).toBe(24 * 3_600_000);

    const minimal = parseOperatorConfig('sidecar: {image: agent-warden:1}', 'c', 'ops');
    expect(minimal.webhook).toMatchObject({
      port: 9443,
      certMode: 'self',
      serviceName: 'agent-warden-webhook',
      secretName: 'agent-warden-webhook-tls',
    });
  });

  it('reads sidecar.ports (partly or wholly moved); bad ports are named under sidecar.ports', () => {
    const read = (ports: string): unknown => parseOperatorConfig(`sidecar: {image: a:1, ports: ${ports}}`, 'c', 'ops').injector.ports;
    expect(parseOperatorConfig('sidecar: {image: a:1}', 'c', 'ops').injector.ports).toEqual({ admin: 15000, egress: 15001, health: 15021 });
    expect(read('{egress: 15101}')).toEqual({ admin: 15000, egress: 15101, health: 15021 });
    expect(read('{admin: 15100, egress: 15101, health: 15121}')).toEqual({ admin: 15100, egress: 15101, health: 15121 });
    expect(problems('sidecar: {image: a:1, ports: {admin: 80, egress: 15000, proxy: 1}}')).toEqual([
      'sidecar.ports.proxy: unknown field (known: admin, egress, health)',
      'sidecar.ports.admin: must be a port number 1024-65535 (got 80)',
    ]);
    expect(problems('sidecar: {image: a:1, ports: {egress: 15000}}')).toEqual([
      'sidecar.ports.egress: 15000 is already ports.admin (each sidecar port must differ)',
    ]);
    expect(problems('sidecar: {image: a:1, ports: {health: "15021"}}')).toEqual([
      'sidecar.ports.health: must be a port number 1024-65535 (got "15021")',
    ]);
  });

  it('names every bad field', () => {
    expect(
      problems(`
sidecar:
  image: agent-warden:1
  imagePullPolicy: Sometimes
  resources: {requests: {cpu: lots}}
  tag: latest
lockdown: "yes"
webhook: {port: 99999, certMode: vault}
approvals: {ttl: forever}
extra: 1
`),
    ).toEqual([
      'extra: unknown field (known: sidecar, lockdown, otlp, webhook, approvals)',
      'sidecar.tag: unknown field (known: image, imagePullPolicy, resources, lockdownImage, tokenAudience, tokenExpirationSeconds, ports, runAsUser, runAsGroup)',
      'lockdown: must be true or false (got "yes")',
      'webhook.port: must be a port number 1-65535 (got 99999)',
      'webhook.certMode: must be self or cert-manager (got "vault")',
      expect.stringMatching(/^approvals.ttl: "forever" is not a duration/),
      expect.stringMatching(/^sidecar.imagePullPolicy: must be one of/),
      'sidecar.resources.requests.cpu: not a Kubernetes quantity (got "lots")',
    ]);
    expect(problems('sidecar: {image: agent-warden:1, imagePullPolicy: Sometimes}')).toEqual([
      expect.stringMatching(/^sidecar.imagePullPolicy: must be one of Always, IfNotPresent, Never/),
    ]);
    expect(problems('webhook: {}')).toEqual(['sidecar.image: required (the warden image the webhook injects)']);
    expect(problems('sidecar: [')[0]).toMatch(/^YAML syntax error/);
  });

  it('reads the OTLP headers Secret and CA ConfigMap for hosted collectors, and refuses them without https', () => {
    const c = parseOperatorConfig(
      `
sidecar: {image: agent-warden:1}
otlp:
  endpoint: https://otlp.example.com
  headersSecret: {name: warden-otlp, key: headers}
  caConfigMap: {name: otlp-ca, key: ca.crt}
  clientCertSecret: otlp-client
`,
      'config.yaml',
      'agent-warden',
    );
    expect(c.injector).toMatchObject({
      otlpEndpoint: 'https://otlp.example.com',
      otlpHeadersSecret: { name: 'warden-otlp', key: 'headers' },
      otlpCaConfigMap: { name: 'otlp-ca', key: 'ca.crt' },
      otlpClientCertSecret: 'otlp-client',
    });
    expect(
      problems(`
sidecar: {image: agent-warden:1}
otlp:
  endpoint: http://otel-collector:4318
  headersSecret: {name: Warden_OTLP, key: "a b", extra: 1}
  caConfigMap: {name: otlp-ca, key: ca.crt}
  clientCertSecret: otlp-client
`),
    ).toEqual([
      'otlp.headersSecret.extra: unknown field (known: name, key)',
      'otlp.headersSecret.name: must be a DNS subdomain name (got "Warden_OTLP")',
      'otlp.headersSecret.key: must be a Secret/ConfigMap key (got "a b")',
      'otlp.headersSecret: needs an https:// otlpEndpoint (got "http://otel-collector:4318")',
      'otlp.caConfigMap: needs an https:// otlpEndpoint (got "http://otel-collector:4318")',
      'otlp.clientCertSecret: needs an https:// otlpEndpoint (got "http://otel-collector:4318")',
    ]);
  });
});
