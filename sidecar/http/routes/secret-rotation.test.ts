// Credentials are cached (secrets.ts), so these pin what the cache must never change: a Secret
// rotated the Kubernetes way (new directory, `..data` symlink swapped) or overwritten in place
// applies to the very next request, and a deleted or unreadable credential fails closed (503
// credential_unavailable) on the next request, not whenever a cache would expire.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent, request } from 'undici';
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import type { Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import { startFakeOpenAI, type FakeOpenAI } from '../../../test/support/sidecar/fake-openai';
import { createRouteHandler, type RouteHandler } from './route-proxy';

const identity: Identity = { subject: 'system:serviceaccount:agents:support', groups: [], source: 'pod' };
let upstream: FakeOpenAI;
let dir: string;
let server: http.Server;
let handler: RouteHandler;
let port: number;
let policy: CompiledPolicy;
const client = new Agent({ keepAliveTimeout: 1000 });

/** The Kubernetes layout: DIR/<secret>/<key> -> ..data/<key>, ..data -> ..<timestamp>/ (swapped atomically). */
let generation = 0;
function publishKubernetesWay(secretDir: string, files: Record<string, string>): void {
  const gen = `..2026_12_07_${String(++generation).padStart(4, '0')}`;
  fs.mkdirSync(path.join(secretDir, gen));
  for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(secretDir, gen, k), v);
  const tmp = path.join(secretDir, '..data_tmp');
  fs.symlinkSync(gen, tmp);
  fs.renameSync(tmp, path.join(secretDir, '..data')); // atomic swap, as the kubelet does
  for (const k of Object.keys(files))
    if (!fs.existsSync(path.join(secretDir, k))) fs.symlinkSync(path.join('..data', k), path.join(secretDir, k));
}

beforeAll(async () => {
  upstream = await startFakeOpenAI();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-rotation-'));
  fs.mkdirSync(path.join(dir, 'kube'));
  publishKubernetesWay(path.join(dir, 'kube'), { token: 'sk-kube-one\n' });
  fs.mkdirSync(path.join(dir, 'plain'));
  fs.writeFileSync(path.join(dir, 'plain', 'token'), 'sk-plain-one');
  const base = `http://127.0.0.1:${upstream.port}/echo/`;
  policy = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'rotation-test', namespace: 'agents' },
    spec: {
      defaultAction: 'allow',
      targets: [
        { name: 'kube', http: { baseUrl: base, credentialsSecret: 'kube' } },
        { name: 'plain', http: { baseUrl: base, credentialsSecret: 'plain', auth: { header: 'X-Api-Key' } } },
      ],
    },
  });
  handler = createRouteHandler({ policy: () => policy, secrets: new SecretStore(dir), identity, audit: () => undefined });
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await handler.close();
  await client.close();
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The credential header the upstream received (the agent's copy is scrubbed), or the sidecar's error type. */
async function sent(route: string, header: string): Promise<string> {
  const before = upstream.requests.length;
  const res = await request(`http://127.0.0.1:${port}/${route}/x`, { dispatcher: client });
  const body = (await res.body.json()) as { error?: { type: string } };
  if (res.statusCode !== 200) return `${res.statusCode} ${body.error?.type}`;
  expect(upstream.requests.length).toBe(before + 1);
  return String(upstream.requests[before].headers[header]);
}

test('a Secret rotated the Kubernetes way (..data symlink swapped) applies to the next request', async () => {
  expect(await sent('kube', 'authorization')).toBe('Bearer sk-kube-one');
  expect(await sent('kube', 'authorization')).toBe('Bearer sk-kube-one'); // served from the cache
  publishKubernetesWay(path.join(dir, 'kube'), { token: 'sk-kube-two\n' });
  expect(await sent('kube', 'authorization')).toBe('Bearer sk-kube-two');
  // Same length, same second: still the new value.
  publishKubernetesWay(path.join(dir, 'kube'), { token: 'sk-kube-333\n' });
  expect(await sent('kube', 'authorization')).toBe('Bearer sk-kube-333');
});

test('a credential overwritten in place applies to the next request, also within one timestamp tick and at the same length', async () => {
  const file = path.join(dir, 'plain', 'token');
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-one');
  fs.writeFileSync(file, 'sk-plain-two');
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-two');
  // An old file (settled in the cache), then rewritten with the same size and its old mtime put back.
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(file, old, old);
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-two');
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-two');
  fs.writeFileSync(file, 'sk-plain-333');
  fs.utimesSync(file, old, old);
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-333'); // ctime moved: re-read
});

test('a deleted credential fails closed on the next request, and a restored one applies again', async () => {
  const file = path.join(dir, 'plain', 'token');
  fs.writeFileSync(file, 'sk-plain-four');
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-four');
  fs.rmSync(file);
  expect(await sent('plain', 'x-api-key')).toBe('503 credential_unavailable');
  fs.writeFileSync(file, 'sk-plain-five');
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-five');
});

test('a Secret whose ..data points nowhere fails closed on the next request', async () => {
  expect(await sent('kube', 'authorization')).toMatch(/^Bearer sk-kube-/);
  const tmp = path.join(dir, 'kube', '..data_tmp');
  fs.symlinkSync('..gone', tmp);
  fs.renameSync(tmp, path.join(dir, 'kube', '..data'));
  expect(await sent('kube', 'authorization')).toBe('503 credential_unavailable');
});

test('an unreadable credential fails closed on the next request', async () => {
  if (process.getuid?.() === 0) return; // root reads a mode-000 file
  const file = path.join(dir, 'plain', 'token');
  fs.writeFileSync(file, 'sk-plain-six');
  expect(await sent('plain', 'x-api-key')).toBe('sk-plain-six');
  fs.chmodSync(file, 0o000);
  try {
    expect(await sent('plain', 'x-api-key')).toBe('503 credential_unavailable');
  } finally {
    fs.chmodSync(file, 0o600);
  }
});
