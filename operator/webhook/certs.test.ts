import * as https from 'node:https';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { applyPatch, type Operation } from 'fast-json-patch';
import { createLogger, silentLogger } from '../../common/log';
import { DEFAULT_RESOURCES, FakeApiServer } from '../../test/support/operator/fake-apiserver';
import { splitPemBundle } from './ca';
import {
  CertConflictError,
  caBundlePatch,
  kubeCertClient,
  startCertManager,
  toSecretData,
  type CertClient,
  type CertManager,
  type JsonPatchOp,
  type SecretWrite,
  type TlsSecret,
  type WebhookEntry,
  type WebhookKind,
} from './certs';
import { startWebhookServer } from './server';

const DAY = 86_400_000;
const NS = 'agent-warden';
const SECRET = 'warden-webhook-tls';
const CONFIGS = { mutating: 'agent-warden-mutating', validating: 'agent-warden-validating' };
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString();

/** An in-memory CertClient with the API server's write semantics (409 on a lost race). */
class MemoryCertClient implements CertClient {
  secret?: TlsSecret;
  private rv = 1;
  readonly configs: Record<WebhookKind, { webhooks: { name: string; clientConfig: { caBundle?: string } }[] }> = {
    mutating: { webhooks: [{ name: 'pods.agentwarden.io', clientConfig: {} }] },
    validating: {
      webhooks: [
        { name: 'policies.agentwarden.io', clientConfig: { caBundle: b64('stale') } },
        { name: 'approvals.agentwarden.io', clientConfig: {} },
      ],
    },
  };
  readonly writes: { ok: boolean; resourceVersion?: string }[] = [];
  readonly patches: JsonPatchOp[][] = [];
  /** Reads wait until this many have arrived, so racing managers really read the same state. */
  private gate?: { n: number; waiting: (() => void)[] };

  holdReads(n: number): void {
    this.gate = { n, waiting: [] };
  }

  async readSecret(): Promise<TlsSecret | undefined> {
    const g = this.gate;
    if (g) {
      await new Promise<void>((resolve) => {
        g.waiting.push(resolve);
        if (g.waiting.length >= g.n) {
          this.gate = undefined;
          g.waiting.forEach((r) => r());
        }
      });
    }
    return this.secret && structuredClone(this.secret);
  }

  async writeSecret(w: SecretWrite): Promise<TlsSecret> {
    const stale = w.resourceVersion === undefined ? this.secret !== undefined : this.secret?.resourceVersion !== w.resourceVersion;
    this.writes.push({ ok: !stale, resourceVersion: w.resourceVersion });
    if (stale) throw new CertConflictError(`Secret ${w.namespace}/${w.name} changed`);
    this.secret = { data: { ...w.data }, resourceVersion: String(++this.rv) };
    return structuredClone(this.secret);
  }

  async readWebhooks(kind: WebhookKind): Promise<WebhookEntry[] | undefined> {
    return this.configs[kind].webhooks.map((w) => ({ name: w.name, caBundle: w.clientConfig.caBundle }));
  }

  async patchWebhooks(kind: WebhookKind, _name: string, patch: JsonPatchOp[]): Promise<void> {
    this.patches.push(patch);
    applyPatch(this.configs[kind], patch as Operation[], true, true);
  }
}

/** Wraps clients so their first n Secret reads return together: racing managers see the same state. */
function readGate(n: number): (c: CertClient) => CertClient {
  const waiting: (() => void)[] = [];
  return (c) => ({
    readWebhooks: (k, name) => c.readWebhooks(k, name),
    patchWebhooks: (k, name, p) => c.patchWebhooks(k, name, p),
    writeSecret: (w) => c.writeSecret(w),
    readSecret: async (ns, name) => {
      if (waiting.length < n) {
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          if (waiting.length === n) waiting.forEach((r) => r());
        });
      }
      return c.readSecret(ns, name);
    },
  });
}

function clock(start: Date): { now(): Date; advance(days: number): void } {
  let t = start.getTime();
  return { now: () => new Date(t), advance: (days) => (t += days * DAY) };
}

describe('caBundlePatch', () => {
  it('sets each webhook whose bundle differs, guarded by a test of its name', () => {
    expect(caBundlePatch([{ name: 'a', caBundle: 'NEW' }, { name: 'b' }, { name: 'c', caBundle: 'OLD' }], 'NEW')).toEqual([
      { op: 'test', path: '/webhooks/1/name', value: 'b' },
      { op: 'add', path: '/webhooks/1/clientConfig/caBundle', value: 'NEW' },
      { op: 'test', path: '/webhooks/2/name', value: 'c' },
      { op: 'add', path: '/webhooks/2/clientConfig/caBundle', value: 'NEW' },
    ]);
    expect(caBundlePatch([{ name: 'a', caBundle: 'NEW' }], 'NEW')).toEqual([]);
  });
});

describe('startCertManager (self-signed) against an in-memory client', () => {
  const managers: CertManager[] = [];
  afterEach(() => managers.splice(0).forEach((m) => m.stop()));

  const start = async (client: CertClient, c: { now(): Date }, onRotate: () => void = () => undefined): Promise<CertManager> => {
    const m = await startCertManager({
      client,
      namespace: NS,
      secretName: SECRET,
      serviceName: 'warden-webhook',
      webhookConfigNames: CONFIGS,
      log: silentLogger,
      onRotate,
      now: c.now,
    });
    managers.push(m);
    return m;
  };

  it('creates the Secret and trusts its CA in every webhook', async () => {
    const client = new MemoryCertClient();
    const m = await start(client, clock(new Date()));
    const data = client.secret!.data;
    expect(Object.keys(data).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(m.tls()).toEqual({ cert: data['tls.crt'], key: data['tls.key'] });
    const hooks = [...client.configs.mutating.webhooks, ...client.configs.validating.webhooks];
    for (const h of hooks) expect(unb64(h.clientConfig.caBundle!)).toBe(data['ca.crt']);
    expect(new X509Certificate(data['tls.crt']).checkIssued(new X509Certificate(data['ca.crt']))).toBe(true);
    // A second check with nothing due writes and patches nothing.
    const writes = client.writes.length;
    const patches = client.patches.length;
    await m.check();
    expect([client.writes.length, client.patches.length]).toEqual([writes, patches]);
  });

  it('two replicas racing create one Secret and serve the same certificate', async () => {
    const client = new MemoryCertClient();
    client.holdReads(2);
    const c = clock(new Date());
    const [a, b] = await Promise.all([start(client, c), start(client, c)]);
    expect(client.writes.filter((w) => w.ok)).toHaveLength(1);
    expect(client.writes.filter((w) => !w.ok)).toHaveLength(1);
    expect(a.tls()).toEqual(b.tls());
    expect(a.tls().cert).toBe(client.secret!.data['tls.crt']);
  });

  it('rotates the serving certificate when due, and other replicas pick it up from the Secret', async () => {
    const client = new MemoryCertClient();
    const c = clock(new Date());
    let rotatedA = 0;
    let rotatedB = 0;
    const a = await start(client, c, () => rotatedA++);
    const b = await start(client, c, () => rotatedB++);
    const first = a.tls().cert;

    c.advance(61);
    await a.check();
    expect(rotatedA).toBe(1);
    expect(a.tls().cert).not.toBe(first);
    expect(b.tls().cert).toBe(first); // not re-read yet
    await b.check();
    expect(rotatedB).toBe(1);
    expect(b.tls()).toEqual(a.tls());
    expect(client.writes.filter((w) => w.ok)).toHaveLength(2);
  });

  it('rotating the CA patches new + old CA into every caBundle before serving the new certificate', async () => {
    const client = new MemoryCertClient();
    const c = clock(new Date());
    const m = await start(client, c);
    const oldCa = client.secret!.data['ca.crt'];
    c.advance(250);
    await m.check();
    const bundle = splitPemBundle(client.secret!.data['ca.crt']);
    expect(bundle).toHaveLength(2);
    expect(bundle[1]).toBe(oldCa);
    for (const h of [...client.configs.mutating.webhooks, ...client.configs.validating.webhooks]) {
      expect(splitPemBundle(unb64(h.clientConfig.caBundle!))).toEqual(bundle);
    }
    expect(new X509Certificate(m.tls().cert).checkIssued(new X509Certificate(bundle[0]))).toBe(true);
  });

  it('keeps serving the current certificate when a later check fails', async () => {
    const client = new MemoryCertClient();
    const c = clock(new Date());
    const m = await start(client, c);
    const before = m.tls();
    client.readSecret = (): Promise<TlsSecret | undefined> => Promise.reject(new Error('connection refused'));
    c.advance(61);
    await expect(m.check()).rejects.toThrow(/connection refused/);
    expect(m.tls()).toEqual(before);
  });

  it('fails to start when the Secret keeps changing under it', async () => {
    const client = new MemoryCertClient();
    client.writeSecret = (w: SecretWrite): Promise<TlsSecret> => Promise.reject(new CertConflictError(`Secret ${w.name} changed`));
    await expect(start(client, clock(new Date()))).rejects.toThrow(/still changing under us after 3 attempts/);
  });
});

describe('startCertManager (cert-manager mode)', () => {
  it('serves the Secret cert-manager keeps, patches nothing, and reloads when it changes', async () => {
    const issuer = new MemoryCertClient();
    const seed = await startCertManager({
      client: issuer,
      namespace: NS,
      secretName: SECRET,
      serviceName: 'warden-webhook',
      webhookConfigNames: CONFIGS,
      log: silentLogger,
      onRotate: () => undefined,
    });
    seed.stop();
    const client = new MemoryCertClient();
    client.secret = {
      data: {
        'tls.crt': issuer.secret!.data['tls.crt'],
        'tls.key': issuer.secret!.data['tls.key'],
        'ca.crt': issuer.secret!.data['ca.crt'],
      },
      resourceVersion: '7',
    };
    let rotated = 0;
    const m = await startCertManager({
      mode: 'cert-manager',
      client,
      namespace: NS,
      secretName: SECRET,
      serviceName: 'ignored',
      webhookConfigNames: CONFIGS,
      log: silentLogger,
      onRotate: () => rotated++,
    });
    try {
      expect(m.tls().cert).toBe(issuer.secret!.data['tls.crt']);
      expect(client.writes).toEqual([]);
      expect(client.patches).toEqual([]);

      client.secret = { data: { ...client.secret.data, 'tls.key': 'garbage' }, resourceVersion: '8' };
      await expect(m.check()).rejects.toThrow(/do not parse/);
      expect(m.tls().cert).toBe(issuer.secret!.data['tls.crt']);

      const next = await startCertManager({
        client: new MemoryCertClient(),
        namespace: NS,
        secretName: SECRET,
        serviceName: 'warden-webhook',
        webhookConfigNames: CONFIGS,
        log: silentLogger,
        onRotate: () => undefined,
        checkIntervalMs: 3_600_000,
      });
      next.stop();
      client.secret = { data: { 'tls.crt': next.tls().cert, 'tls.key': next.tls().key }, resourceVersion: '9' };
      await m.check();
      expect(rotated).toBe(1);
      expect(m.tls()).toEqual(next.tls());
    } finally {
      m.stop();
    }
  });

  it('refuses to start without the Secret', async () => {
    await expect(
      startCertManager({
        mode: 'cert-manager',
        client: new MemoryCertClient(),
        namespace: NS,
        secretName: SECRET,
        serviceName: 's',
        webhookConfigNames: CONFIGS,
        log: silentLogger,
        onRotate: () => undefined,
      }),
    ).rejects.toThrow(`webhook TLS Secret ${NS}/${SECRET} not found`);
  });
});

describe('kubeCertClient against the fake API server', () => {
  let fake: FakeApiServer;
  const webhookResources = [
    {
      group: 'admissionregistration.k8s.io',
      version: 'v1',
      plural: 'mutatingwebhookconfigurations',
      kind: 'MutatingWebhookConfiguration',
      namespaced: false,
    },
    {
      group: 'admissionregistration.k8s.io',
      version: 'v1',
      plural: 'validatingwebhookconfigurations',
      kind: 'ValidatingWebhookConfiguration',
      namespaced: false,
    },
  ];
  const webhook = (name: string, caBundle?: string): Record<string, unknown> => ({
    name,
    clientConfig: { service: { namespace: NS, name: 'warden-webhook', path: '/mutate', port: 443 }, ...(caBundle ? { caBundle } : {}) },
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Fail',
    timeoutSeconds: 5,
  });

  beforeAll(async () => {
    fake = await FakeApiServer.start({ resources: [...DEFAULT_RESOURCES, ...webhookResources] });
  });
  beforeEach(() => {
    fake.remove('v1', 'Secret', NS, SECRET);
    fake.put({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: CONFIGS.mutating },
      webhooks: [webhook('pods.agentwarden.io')],
    });
    fake.put({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: CONFIGS.validating },
      webhooks: [webhook('policies.agentwarden.io', b64('old bundle')), webhook('approvals.agentwarden.io')],
    });
  });
  afterAll(async () => {
    await fake.close();
  });

  it('reads, creates and replaces the Secret, answering a lost race with CertConflictError', async () => {
    const client = kubeCertClient(fake.kubeConfig());
    expect(await client.readSecret(NS, SECRET)).toBeUndefined();
    const created = await client.writeSecret({ namespace: NS, name: SECRET, data: { 'tls.crt': 'C', 'tls.key': 'K' } });
    expect(created.data).toEqual({ 'tls.crt': 'C', 'tls.key': 'K' });
    const stored = fake.object('v1', 'Secret', NS, SECRET)!;
    expect(stored.type).toBe('kubernetes.io/tls');
    expect(stored.data).toEqual({ 'tls.crt': b64('C'), 'tls.key': b64('K') });
    expect((stored.metadata as { labels: Record<string, string> }).labels).toEqual({ 'app.kubernetes.io/managed-by': 'agent-warden' });

    await expect(client.writeSecret({ namespace: NS, name: SECRET, data: { 'tls.crt': 'X', 'tls.key': 'Y' } })).rejects.toBeInstanceOf(
      CertConflictError,
    );
    const replaced = await client.writeSecret({
      namespace: NS,
      name: SECRET,
      data: { 'tls.crt': 'C2', 'tls.key': 'K2' },
      resourceVersion: created.resourceVersion,
    });
    expect(replaced.data['tls.crt']).toBe('C2');
    await expect(
      client.writeSecret({
        namespace: NS,
        name: SECRET,
        data: { 'tls.crt': 'C3', 'tls.key': 'K3' },
        resourceVersion: created.resourceVersion,
      }),
    ).rejects.toBeInstanceOf(CertConflictError);
    expect((await client.readSecret(NS, SECRET))?.data['tls.crt']).toBe('C2');
  });

  it('reads webhooks and JSON-patches their caBundle; a missing configuration reads as undefined', async () => {
    const client = kubeCertClient(fake.kubeConfig());
    expect(await client.readWebhooks('validating', CONFIGS.validating)).toEqual([
      { name: 'policies.agentwarden.io', caBundle: b64('old bundle') },
      { name: 'approvals.agentwarden.io', caBundle: undefined },
    ]);
    expect(await client.readWebhooks('mutating', 'nope')).toBeUndefined();
    await client.patchWebhooks('mutating', CONFIGS.mutating, caBundlePatch([{ name: 'pods.agentwarden.io' }], b64('NEW')));
    expect(await client.readWebhooks('mutating', CONFIGS.mutating)).toEqual([{ name: 'pods.agentwarden.io', caBundle: b64('NEW') }]);
    const patchReq = fake.requests.filter((r) => r.method === 'PATCH').at(-1);
    expect(patchReq?.contentType).toBe('application/json-patch+json');
    // A patch computed against a reordered list fails its test op instead of mislabelling a webhook.
    await expect(client.patchWebhooks('mutating', CONFIGS.mutating, caBundlePatch([{ name: 'someone-else' }], b64('X')))).rejects.toThrow(
      /HTTP 422/,
    );
  });

  it('two managers racing through the API create one Secret, patch the CA in, and serve it over TLS', async () => {
    const lines: string[] = [];
    const log = createLogger({}, 'debug', (l) => lines.push(l));
    const gate = readGate(2);
    const start = (): Promise<CertManager> =>
      startCertManager({
        client: gate(kubeCertClient(fake.kubeConfig())),
        namespace: NS,
        secretName: SECRET,
        serviceName: 'warden-webhook',
        webhookConfigNames: CONFIGS,
        log,
        onRotate: () => undefined,
      });
    const mark = fake.requests.length;
    const [a, b] = await Promise.all([start(), start()]);
    a.stop();
    b.stop();
    expect(a.tls()).toEqual(b.tls());
    const secretWrites = fake.requests.slice(mark).filter((r) => r.path.endsWith(`/secrets`) && r.method === 'POST');
    expect(secretWrites.map((r) => r.status).sort()).toEqual([201, 409]);

    const stored = fake.object('v1', 'Secret', NS, SECRET)!;
    const caPem = unb64((stored.data as Record<string, string>)['ca.crt']);
    expect(unb64((stored.data as Record<string, string>)['tls.crt'])).toBe(a.tls().cert);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      const cfg = fake.object(
        'admissionregistration.k8s.io/v1',
        kind,
        undefined,
        kind.startsWith('M') ? CONFIGS.mutating : CONFIGS.validating,
      )!;
      for (const h of cfg.webhooks as { clientConfig: { caBundle: string } }[]) expect(unb64(h.clientConfig.caBundle)).toBe(caPem);
    }
    // No log line carries key material.
    expect(lines.join('\n')).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);

    // The API server's view: dial the Service name, trust exactly the patched caBundle.
    const server = await startWebhookServer({
      port: 0,
      host: '127.0.0.1',
      tls: a.tls,
      handlers: { '/mutate': (r) => ({ uid: r.request!.uid, allowed: true }) },
      log: silentLogger,
    });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: server.port,
            servername: 'warden-webhook.agent-warden.svc',
            ca: caPem,
            path: '/mutate',
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            agent: false,
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1' } }));
      });
      expect(status).toBe(200);
      // And a name the certificate does not carry is refused.
      await expect(
        new Promise((resolve, reject) => {
          const s = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'evil.example.com', ca: caPem }, () =>
            resolve(s.end()),
          );
          s.on('error', reject);
        }),
      ).rejects.toThrow(/does not match|altnames/i);
    } finally {
      await server.close();
    }
  });

  it('keeps a valid Secret it finds and only fixes the caBundle', async () => {
    const seed = new MemoryCertClient();
    const m0 = await startCertManager({
      client: seed,
      namespace: NS,
      secretName: SECRET,
      serviceName: 'warden-webhook',
      webhookConfigNames: CONFIGS,
      log: silentLogger,
      onRotate: () => undefined,
    });
    m0.stop();
    const material = seed.secret!.data;
    await kubeCertClient(fake.kubeConfig()).writeSecret({ namespace: NS, name: SECRET, data: material });
    const before = fake.object('v1', 'Secret', NS, SECRET)!;
    const m = await startCertManager({
      client: kubeCertClient(fake.kubeConfig()),
      namespace: NS,
      secretName: SECRET,
      serviceName: 'warden-webhook',
      webhookConfigNames: CONFIGS,
      log: silentLogger,
      onRotate: () => undefined,
    });
    m.stop();
    expect(m.tls().cert).toBe(material['tls.crt']);
    expect((fake.object('v1', 'Secret', NS, SECRET)!.metadata as { resourceVersion: string }).resourceVersion).toBe(
      (before.metadata as { resourceVersion: string }).resourceVersion,
    );
    const cfg = fake.object('admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration', undefined, CONFIGS.validating)!;
    for (const h of cfg.webhooks as { clientConfig: { caBundle: string } }[]) expect(h.clientConfig.caBundle).toBe(b64(material['ca.crt']));
    expect(toSecretData({ caBundle: 'A', caKey: 'B', cert: 'C', key: 'D' })).toEqual({
      'ca.crt': 'A',
      'ca.key': 'B',
      'tls.crt': 'C',
      'tls.key': 'D',
    });
  });
});
