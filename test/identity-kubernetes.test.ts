// spec.identity.kubernetes end to end, with every real part this machine can run: the operator
// (startOperator) against a FakeApiServer that serves the cluster's discovery document and JWK Set
// as kube-apiserver does (test/support/identity/kube-issuer.ts); the policy ConfigMap it renders,
// copied into a directory as the kubelet mounts it (policy.yaml and kubernetes-keys.json side by
// side, swapped atomically); the sidecar started on that directory with no API access; a real
// PostgreSQL and the real `pg` client presenting a projected token as its password; undici sending
// it as a bearer token to a named route. Then the keys rotate, and the file goes missing.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';
import { request } from 'undici';
import YAML from 'yaml';
import { silentLogger } from '../common/log';
import { CLUSTER_KEYS_FILE } from '../common/identity/cluster-keys';
import { POLICY_CONFIGMAP_KEY } from '../common/k8s/names';
import { parseOperatorConfig } from '../operator/config';
import { startOperator, type RunningOperator } from '../operator/main';
import { KubeIssuer } from './support/identity/kube-issuer';
import { FakeApiServer } from './support/operator/fake-apiserver';
import { startPg, startStack, type Stack } from './support/stack';
import type { PgServer } from '../tools/pg-server';

const AUD = 'agent-warden';
const UPSTREAM_KEY = 'sk-upstream-credential-7f3a';
const NS = 'agents';
const CM = 'warden-policy-identity-demo';

let api: FakeApiServer;
let issuer: KubeIssuer;
let operator: RunningOperator;
let pg: PgServer;
let stack: Stack;
let upstream: http.Server;
let upstreamPort: number;
const seen: Array<{ method?: string; url?: string; authorization?: string }> = [];
let mountDir: string;
let mountRoot: string;

async function until<T>(get: () => T | undefined | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function configMapData(): Record<string, string> | undefined {
  return (api.object('v1', 'ConfigMap', NS, CM) as { data?: Record<string, string> } | undefined)?.data;
}

/** What the kubelet does with a ConfigMap volume: every key as a file, all swapped at once. */
function kubeletSync(): void {
  const data = configMapData() ?? {};
  const next = path.join(path.dirname(mountDir), `..data-${Date.now()}-${Math.random()}`);
  fs.mkdirSync(next);
  for (const [k, v] of Object.entries(data)) fs.writeFileSync(path.join(next, k), v);
  const old = fs.existsSync(mountDir) ? fs.readlinkSync(mountDir) : undefined;
  fs.symlinkSync(next, `${mountDir}.tmp`);
  fs.renameSync(`${mountDir}.tmp`, mountDir);
  if (old) fs.rmSync(old, { recursive: true, force: true });
}

function policyYaml(): string {
  return `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: identity-demo, namespace: ${NS}}
spec:
  podSelector: {matchLabels: {app: support-agent}}
  defaultAction: allow
  identity:
    kubernetes:
      audiences: [${AUD}]
  targets:
    - name: crm
      postgres: {host: 127.0.0.1, port: ${pg.port}, database: crm, tls: disable, credentialsSecret: crm-db, listenPort: 15432}
    - name: api
      http:
        baseUrl: http://127.0.0.1:${upstreamPort}
        credentialsSecret: api
        auth: {header: Authorization, valuePrefix: "Bearer "}
  rules:
    - name: support-may-delete
      action: allow
      match: {target: crm, subjects: ["system:serviceaccount:${NS}:support"], sql: {statements: [DELETE]}}
    - name: no-deletes
      action: deny
      match: {target: crm, sql: {statements: [DELETE]}}
    - name: agents-namespace-may-post
      action: allow
      match: {target: api, groups: ["system:serviceaccounts:${NS}"], http: {methods: [POST]}}
    - name: no-posts
      action: deny
      match: {target: api, http: {methods: [POST]}}
`;
}

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as AddressInfo).port;
  pg = await startPg();

  api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  issuer = await KubeIssuer.create();
  issuer.serveOn(api);
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  for (const s of ['crm-db', 'api']) api.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: s, namespace: NS }, data: {} });
  const config = parseOperatorConfig('sidecar:\n  image: ghcr.io/agent-warden/agent-warden:test\n', 'test', 'agent-warden');
  operator = await startOperator({
    kubeConfig: api.kubeConfig(),
    config,
    adminAddr: '127.0.0.1:0',
    namespace: 'agent-warden',
    identity: 'operator-0',
    webhooks: false,
    log: silentLogger,
    timings: {
      leaseDurationSeconds: 2,
      renewIntervalMs: 100,
      renewDeadlineMs: 1000,
      backoffInitialMs: 20,
      clusterKeysRefreshMs: 200,
      clusterKeysRetryMs: 200,
    },
  });
  await until(() => operator.isLeader());
  api.put(YAML.parse(policyYaml()));
  await until(() => configMapData()?.[CLUSTER_KEYS_FILE]);
  mountRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-kubelet-'));
  mountDir = path.join(mountRoot, 'policy');
  kubeletSync();

  stack = await startStack(
    {
      setupSql: 'DROP TABLE IF EXISTS items; CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 10);',
      policy: () => configMapData()![POLICY_CONFIGMAP_KEY],
      beforeSidecar: (secretsDir) => {
        fs.mkdirSync(path.join(secretsDir, 'api'));
        fs.writeFileSync(path.join(secretsDir, 'api', 'token'), UPSTREAM_KEY);
      },
      // the sidecar as injected: --policy <mount>/policy.yaml, the keys found next to it
      sidecar: { policyFile: path.join(mountDir, POLICY_CONFIGMAP_KEY) },
    },
    pg,
  );
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await operator?.stop();
  await api?.close();
  await pg?.stop();
  await new Promise((r) => upstream?.close(r));
  if (mountRoot) fs.rmSync(mountRoot, { recursive: true, force: true });
});

const token = (serviceAccount: string, over: Partial<Parameters<KubeIssuer['token']>[0]> = {}): Promise<string> =>
  issuer.token({ namespace: NS, serviceAccount, audiences: [AUD], ...over });

async function sql(password: string, text: string): Promise<unknown> {
  const c = new Client({ host: '127.0.0.1', port: stack.port, database: 'crm', user: 'anyone', password });
  await c.connect();
  try {
    return (await c.query(text)).rowCount;
  } finally {
    await c.end();
  }
}

async function post(tok: string | undefined): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${stack.sidecar.egressPort}/api/v1/things`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(tok ? { authorization: `Bearer ${tok}` } : {}) },
    body: '{"x":1}',
  });
  return { status: res.statusCode, body: await res.body.text() };
}

test('the operator put the cluster issuer and keys next to the policy; the sidecar needs no API access', () => {
  const doc = JSON.parse(configMapData()![CLUSTER_KEYS_FILE]);
  expect(doc.issuer).toBe(issuer.issuer);
  expect(doc.jwks.keys.map((k: { kid: string }) => k.kid)).toEqual([issuer.signing.kid]);
  expect(fs.readFileSync(path.join(mountDir, CLUSTER_KEYS_FILE), 'utf8')).toBe(configMapData()![CLUSTER_KEYS_FILE]);
  const status = (api.object('agentwarden.io/v1alpha1', 'AccessPolicy', NS, 'identity-demo') as { status?: { conditions?: unknown[] } })
    .status;
  expect(status?.conditions).toContainEqual(expect.objectContaining({ type: 'Ready', status: 'True' }));
});

test("pg: the pod's projected token as the password; rules decide by its service account", async () => {
  expect(await sql(await token('support'), 'DELETE FROM items WHERE id = 1')).toBe(1);
  const ev = stack.events.find((e) => e.text.includes('WHERE id = 1'));
  expect(ev).toMatchObject({
    decision: 'allow',
    rule: 'support-may-delete',
    identity: { subject: `system:serviceaccount:${NS}:support`, source: 'token' },
  });
  await expect(sql(await token('research'), 'DELETE FROM items WHERE id = 2')).rejects.toMatchObject({ code: '42501' });
  expect(await sql(await token('research'), 'SELECT 1')).toBe(1);
});

test('pg: expired, wrong-audience, other-cluster, none and HS256 tokens never log in (28P01)', async () => {
  const other = await KubeIssuer.create();
  const claims = { iss: issuer.issuer, sub: `system:serviceaccount:${NS}:support`, aud: [AUD], exp: Math.floor(Date.now() / 1000) + 600 };
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const bad = [
    await token('support', { issuedAt: Math.floor(Date.now() / 1000) - 1200 }),
    await token('support', { audiences: ['https://kubernetes.default.svc.cluster.local'] }),
    await other.token({ namespace: NS, serviceAccount: 'support', audiences: [AUD] }),
    `${b64({ alg: 'none', kid: issuer.signing.kid })}.${b64(claims)}.`,
    `${b64({ alg: 'HS256', kid: issuer.signing.kid })}.${b64(claims)}.c2lnbmF0dXJl`,
  ];
  for (const t of bad) {
    const e = await sql(t, 'SELECT 1').then(
      () => undefined,
      (err: Error & { code?: string }) => err,
    );
    expect(e).toMatchObject({ code: '28P01' });
    expect(e!.message).not.toContain(t.split('.')[1]);
  }
});

test('http: bearer token through undici; the upstream gets the route credential, never the token', async () => {
  const t = await token('support');
  const before = seen.length;
  expect((await post(t)).status).toBe(200);
  expect(seen.at(-1)).toMatchObject({ method: 'POST', authorization: `Bearer ${UPSTREAM_KEY}` });
  // a service account of another namespace is refused by rule, and nothing reaches the upstream
  const outsider = await issuer.token({ namespace: 'elsewhere', serviceAccount: 'support', audiences: [AUD] });
  expect((await post(outsider)).status).toBe(403);
  expect((await post(undefined)).status).toBe(401);
  expect((await post(await token('support', { audiences: ['vault'] }))).status).toBe(401);
  expect(seen.length).toBe(before + 1);
});

test('forward proxy: the token in Proxy-Authorization (Bearer, or Basic with the token as the password); 407 without', async () => {
  const t = await token('support');
  const viaProxy = async (auth?: string): Promise<number> => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: stack.sidecar.egressPort,
        method: 'GET',
        path: `http://127.0.0.1:${upstreamPort}/direct`,
        headers: auth ? { 'proxy-authorization': auth } : {},
      });
      req.on('response', resolve).on('error', reject).end();
    });
    res.resume();
    return res.statusCode ?? 0;
  };
  const before = seen.length;
  expect(await viaProxy(`Bearer ${t}`)).toBe(200);
  expect(await viaProxy(`Basic ${Buffer.from(`agent:${t}`).toString('base64')}`)).toBe(200);
  expect(seen.slice(before).map((r) => r.authorization)).toEqual([undefined, undefined]);
  expect(await viaProxy()).toBe(407);
  expect(await viaProxy(`Bearer ${await token('support', { audiences: ['vault'] })}`)).toBe(407);
  expect(seen.length).toBe(before + 2);
});

test('key rotation: the operator refreshes the ConfigMap, the kubelet swaps the files, new tokens work, retired keys stop', async () => {
  const old = await token('support');
  const next = await issuer.rotate();
  const fresh = await token('support');
  await expect(sql(fresh, 'SELECT 1')).rejects.toMatchObject({ code: '28P01' });
  await until(() => configMapData()?.[CLUSTER_KEYS_FILE].includes(next.kid));
  kubeletSync();
  await new Promise((r) => setTimeout(r, 1100)); // the sidecar reads the file at most once a second
  expect(await sql(fresh, 'SELECT 1')).toBe(1);
  expect(await sql(old, 'SELECT 1')).toBe(1);
  issuer.retire(issuer.published[0].kid);
  await until(() => JSON.parse(configMapData()![CLUSTER_KEYS_FILE]).jwks.keys.length === 1);
  kubeletSync();
  await new Promise((r) => setTimeout(r, 1100));
  await expect(sql(old, 'SELECT 1')).rejects.toMatchObject({ code: '28P01' });
  expect((await post(old)).status).toBe(401);
  expect(await sql(fresh, 'SELECT 1')).toBe(1);
});

test('a ConfigMap edit that swaps in keys of its own is put back by the operator', async () => {
  const forger = await KubeIssuer.create();
  const cm = api.object('v1', 'ConfigMap', NS, CM) as { data: Record<string, string> };
  const good = cm.data[CLUSTER_KEYS_FILE];
  const forged = JSON.stringify({ issuer: issuer.issuer, jwks: forger.jwks() });
  api.put({ ...cm, data: { ...cm.data, [CLUSTER_KEYS_FILE]: forged } });
  await until(() => configMapData()?.[CLUSTER_KEYS_FILE] === good);
});

test('fail closed: without the keys file every token is refused; back when it is back', async () => {
  const t = await token('support');
  const keysFile = path.join(mountDir, CLUSTER_KEYS_FILE);
  const saved = fs.readFileSync(keysFile, 'utf8');
  const real = fs.realpathSync(keysFile);
  fs.rmSync(real);
  await new Promise((r) => setTimeout(r, 1100));
  const e = await sql(t, 'SELECT 1').then(
    () => undefined,
    (err: Error & { code?: string }) => err,
  );
  expect(e).toMatchObject({ code: '28P01' });
  expect(e!.message).toMatch(/service-account keys are not available/);
  const http401 = await post(t);
  expect(http401.status).toBe(401);
  fs.writeFileSync(
    real,
    '{"issuer":"https://kubernetes.default.svc.cluster.local","jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x","alg":"HS256"}]}}',
  );
  await new Promise((r) => setTimeout(r, 1100));
  await expect(sql(t, 'SELECT 1')).rejects.toMatchObject({ code: '28P01' });
  fs.writeFileSync(real, saved);
  await new Promise((r) => setTimeout(r, 1100));
  expect(await sql(t, 'SELECT 1')).toBe(1);
});
