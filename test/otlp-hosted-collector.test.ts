// A hosted collector wants an API key header and, when private, its own CA (sometimes a client
// certificate too). The operator hands them to the sidecar as the standard
// OTEL_EXPORTER_OTLP_HEADERS (from a Secret), OTEL_EXPORTER_OTLP_CERTIFICATE (a mounted ConfigMap
// key) and OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE/_KEY (a mounted kubernetes.io/tls Secret); this
// checks that the sidecar's own exporters (sidecar/audit/exporters.ts) honour them against a real
// HTTPS collector stand-in that refuses requests without the header, served with a certificate of a
// private CA, which records the client certificate presented.
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExportResult } from '@opentelemetry/core';
import type { AuditRecord } from '../common/audit/record';
import { buildSidecar } from '../operator/inject/sidecar';
import { NameAllocator } from '../operator/inject/names-alloc';
import type { EnvVar } from '../operator/inject/k8s-types';
import { generateCa, issueServingCert } from '../operator/webhook/ca';
import { createProtobufMetricsExporter, createRecordExporters, otlpSettingsFromEnv, sidecarResource } from '../sidecar/audit/exporters';
import { httpRecord } from '../sidecar/audit/records';
import { startTrace } from '../sidecar/audit/trace-context';
import { fixturePolicies, testConfig } from './support/operator/inject-fixtures';

const API_KEY = 'hc-3f9a2d7e-not-a-real-key';

interface Collector {
  url: string;
  /** clientCert: the SHA-256 fingerprint of the client certificate presented, if any. */
  seen: Array<{ path: string; apiKey?: string; status: number; clientCert?: string }>;
  close(): Promise<void>;
}

/** An OTLP/HTTP endpoint over TLS that answers 401 without the api key (as hosted collectors do). */
async function startCollector(cert: { cert: string; key: string }): Promise<Collector> {
  const seen: Collector['seen'] = [];
  // requestCert without rejectUnauthorized: the stand-in records which certificate was presented.
  const server = https.createServer({ cert: cert.cert, key: cert.key, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    req.resume();
    req.on('end', () => {
      const apiKey = req.headers['x-api-key'] as string | undefined;
      const status = apiKey === API_KEY ? 200 : 401;
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({ path: req.url ?? '', apiKey, status, ...(peer?.fingerprint256 ? { clientCert: peer.fingerprint256 } : {}) });
      res.writeHead(status, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' });
      res.end(status === 200 && String(req.headers['content-type']).includes('json') ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://localhost:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function record(): AuditRecord {
  return httpRecord(
    'http',
    {
      session: 'http-1',
      seq: 1,
      start: Date.now(),
      durationMs: 1,
      policy: 'agents/support',
      target: 'openai',
      decision: 'allow',
      reason: 'allowed by rule read-models',
      identity: { subject: 'system:serviceaccount:agents:bot', groups: [], source: 'pod' },
      masked: 0,
    },
    startTrace(undefined),
    { method: 'GET', route: 'openai', path: '/v1/models', url: 'https://api.openai.com/v1/models', status: 200 },
  );
}

const exportOnce = <T>(exporter: { export(items: T, done: (r: ExportResult) => void): void }, items: T): Promise<ExportResult> =>
  new Promise((resolve) => exporter.export(items, resolve));

/**
 * The sidecar container's environment as the kubelet would give it: literal values as they are,
 * secretKeyRef values from `secrets`, and file paths under a mounted ConfigMap moved to `mountRoot`
 * (where the ConfigMap's items are written).
 */
function kubeletEnv(
  sidecar: ReturnType<typeof buildSidecar>,
  secrets: Record<string, Record<string, string>>,
  configMaps: Record<string, Record<string, string>>,
  mountRoot: string,
): Record<string, string> {
  type Items = Array<{ key: string; path: string }>;
  const moved = new Map<string, string>();
  for (const mount of sidecar.container.volumeMounts ?? []) {
    const volume = sidecar.volumes.find((v) => v.name === mount.name) as {
      configMap?: { name: string; items?: Items };
      secret?: { secretName: string; items?: Items };
    };
    const source = volume.configMap?.items
      ? { data: configMaps[volume.configMap.name], items: volume.configMap.items }
      : volume.secret?.items && secrets[volume.secret.secretName]
        ? { data: secrets[volume.secret.secretName], items: volume.secret.items }
        : undefined;
    if (!source) continue;
    const dir = path.join(mountRoot, mount.name);
    fs.mkdirSync(dir, { recursive: true });
    for (const item of source.items) fs.writeFileSync(path.join(dir, item.path), source.data[item.key]);
    moved.set(mount.mountPath, dir);
  }
  const out: Record<string, string> = {};
  for (const e of (sidecar.container.env ?? []) as EnvVar[]) {
    if (!e.name.startsWith('OTEL_EXPORTER_OTLP')) continue;
    const ref = (e.valueFrom as { secretKeyRef?: { name: string; key: string } } | undefined)?.secretKeyRef;
    let value = ref ? secrets[ref.name][ref.key] : (e.value ?? '');
    for (const [from, to] of moved) if (value.startsWith(`${from}/`)) value = to + value.slice(from.length);
    out[e.name] = value;
  }
  return out;
}

describe('OTLP to a hosted collector (API key header, private CA)', () => {
  let dir: string;
  let collector: Collector;
  let ca: { cert: string; key: string };
  let client: { cert: string; key: string };
  const saved = { ...process.env };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otlp-hosted-'));
    const now = new Date();
    ca = await generateCa({ now });
    collector = await startCollector(await issueServingCert({ ca, dnsNames: ['localhost'], now }));
    // Any certificate of the CA does to check that the sidecar presents the mounted one.
    client = await issueServingCert({ ca, dnsNames: ['warden-sidecar.agents'], now });
  });
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    collector.seen.length = 0;
  });
  afterAll(async () => {
    await collector.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The env the operator injects for this config, resolved; then the sidecar's exporters built from it. */
  function sidecarExportersFor(protocol: 'http/protobuf' | 'http/json', withHeaders: boolean, withCa: boolean, withClientCert = false) {
    const config = testConfig({
      otlpEndpoint: collector.url,
      otlpProtocol: protocol,
      otlpHeadersSecret: withHeaders ? { name: 'warden-otlp', key: 'headers' } : undefined,
      otlpCaConfigMap: withCa ? { name: 'otlp-ca', key: 'ca.crt' } : undefined,
      otlpClientCertSecret: withClientCert ? 'otlp-client' : undefined,
    });
    const sidecar = buildSidecar({ policy: fixturePolicies()[0], config, annotations: {}, names: new NameAllocator([]) });
    const secrets = {
      'warden-otlp': { headers: `x-api-key=${API_KEY}` },
      'otlp-client': { 'tls.crt': client.cert, 'tls.key': client.key },
    };
    const env = kubeletEnv(sidecar, secrets, { 'otlp-ca': { 'ca.crt': ca.cert } }, dir);
    // The exporters read the variables from process.env, as in the sidecar's export thread.
    for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];
    Object.assign(process.env, env);
    const settings = otlpSettingsFromEnv(process.env)!;
    const resource = sidecarResource(process.env);
    return {
      env,
      settings,
      records: createRecordExporters(settings, resource),
      metrics: createProtobufMetricsExporter(settings.metrics.url, resource, Date.now()),
    };
  }

  test.each(['http/protobuf', 'http/json'] as const)(
    '%s: spans and logs reach the collector with the key, over its private CA',
    async (protocol) => {
      const { env, records } = sidecarExportersFor(protocol, true, true);
      expect(Object.keys(env).sort()).toEqual([
        'OTEL_EXPORTER_OTLP_CERTIFICATE',
        'OTEL_EXPORTER_OTLP_ENDPOINT',
        'OTEL_EXPORTER_OTLP_HEADERS',
        'OTEL_EXPORTER_OTLP_PROTOCOL',
      ]);
      expect(await exportOnce(records.traces, [record()])).toMatchObject({ code: 0 });
      expect(await exportOnce(records.logs, [record()])).toMatchObject({ code: 0 });
      expect(collector.seen).toEqual([
        { path: '/v1/traces', apiKey: API_KEY, status: 200 },
        { path: '/v1/logs', apiKey: API_KEY, status: 200 },
      ]);
      await Promise.all([records.traces.shutdown(), records.logs.shutdown()]);
    },
  );

  test('metrics too', async () => {
    const { metrics } = sidecarExportersFor('http/protobuf', true, true);
    const snapshot = {
      counters: [{ name: 'warden_operations_total', help: 'ops', monotonic: true, points: [{ labels: {}, value: 1 }] }],
      histograms: [],
    };
    expect(await exportOnce(metrics, snapshot)).toMatchObject({ code: 0 });
    expect(collector.seen).toEqual([{ path: '/v1/metrics', apiKey: API_KEY, status: 200 }]);
    await metrics.shutdown();
  });

  test('mTLS: with a client certificate Secret the sidecar presents that certificate', async () => {
    const { env, records } = sidecarExportersFor('http/protobuf', true, true, true);
    expect(env).toMatchObject({
      OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: expect.stringMatching(/\/tls\.crt$/),
      OTEL_EXPORTER_OTLP_CLIENT_KEY: expect.stringMatching(/\/tls\.key$/),
    });
    expect(await exportOnce(records.traces, [record()])).toMatchObject({ code: 0 });
    expect(collector.seen).toEqual([
      { path: '/v1/traces', apiKey: API_KEY, status: 200, clientCert: new X509Certificate(client.cert).fingerprint256 },
    ]);
    await records.traces.shutdown();
  });

  test('without the CA the collector is not trusted, and without the headers it refuses: nothing is accepted', async () => {
    const noCa = sidecarExportersFor('http/protobuf', true, false);
    expect(await exportOnce(noCa.records.traces, [record()])).toMatchObject({ code: 1 });
    expect(collector.seen).toEqual([]); // the TLS handshake failed: no request reached it
    await noCa.records.traces.shutdown();

    const noHeaders = sidecarExportersFor('http/protobuf', false, true);
    expect(await exportOnce(noHeaders.records.traces, [record()])).toMatchObject({ code: 1 });
    expect(collector.seen).toEqual([{ path: '/v1/traces', apiKey: undefined, status: 401 }]);
    await noHeaders.records.traces.shutdown();
  });
});
