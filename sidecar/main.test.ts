// startSidecar's lifecycle: a failed start leaves nothing open, reloads apply one at a time and a
// failed one does not leave the sidecar unready for good, stop() releases every port.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../common/log';
import { freePort } from '../tools/pg-server';
import { startSidecar } from './main';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-main-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function policy(listenPort: number): string {
  const file = path.join(dir, 'policy.yaml');
  fs.writeFileSync(
    file,
    `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: lifecycle}
spec:
  defaultAction: allow
  targets:
    - name: crm
      postgres: {host: 127.0.0.1, port: 5432, database: crm, tls: disable, credentialsSecret: crm-db, listenPort: ${listenPort}}
`,
  );
  return file;
}

async function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

test('a bad address fails the start before anything is opened', async () => {
  const listen = await freePort();
  await expect(
    startSidecar({ policyFile: policy(listen), adminAddr: 'localhost:abc', egressAddr: '127.0.0.1:0', logger: silentLogger }),
  ).rejects.toThrow(/invalid address "localhost:abc"/);
  expect(await bindable(listen)).toBe(true);
});

test('a port already taken fails the start and releases what was opened', async () => {
  const listen = await freePort();
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const egressPort = (taken.address() as net.AddressInfo).port;
  try {
    await expect(
      startSidecar({ policyFile: policy(listen), adminAddr: '127.0.0.1:0', egressAddr: `127.0.0.1:${egressPort}`, logger: silentLogger }),
    ).rejects.toThrow(/EADDRINUSE/);
    expect(await bindable(listen)).toBe(true);
  } finally {
    taken.close();
  }
});

test('a reload that cannot be applied makes the sidecar unready until one that can; stop releases the ports', async () => {
  const first = await freePort();
  const file = policy(first);
  const sidecar = await startSidecar({ policyFile: file, adminAddr: '127.0.0.1:0', egressAddr: '127.0.0.1:0', logger: silentLogger });
  const ready = async (): Promise<number> => (await fetch(`http://127.0.0.1:${sidecar.adminPort}/readyz`)).status;
  const blocker = net.createServer();
  const blocked = await freePort();
  await new Promise<void>((r) => blocker.listen(blocked, '127.0.0.1', r));
  try {
    expect(await ready()).toBe(200);
    policy(blocked); // valid policy, but its port is taken
    sidecar.store.check();
    for (let i = 0; i < 100 && (await ready()) === 200; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await ready()).toBe(503);
    const next = await freePort();
    policy(next);
    sidecar.store.check();
    for (let i = 0; i < 100 && (await ready()) !== 200; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await ready()).toBe(200);
    expect(sidecar.ports.get('crm')).toBe(next);
    expect(sidecar.metrics.render()).toMatch(/warden_policy_reloads_total\{result="failed"\} 1/);
  } finally {
    blocker.close();
    const admin = sidecar.adminPort;
    const egress = sidecar.egressPort;
    const pg = sidecar.ports.get('crm')!;
    await sidecar.stop(100);
    expect(await bindable(admin)).toBe(true);
    expect(await bindable(egress)).toBe(true);
    expect(await bindable(pg)).toBe(true);
  }
});

test('a policy without postgres targets starts no SQL parser; the first postgres target starts it', async () => {
  const file = path.join(dir, 'policy.yaml');
  fs.writeFileSync(
    file,
    `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: http-only}
spec:
  defaultAction: allow
  targets:
    - name: api
      http: {baseUrl: "http://127.0.0.1:1"}
`,
  );
  const sidecar = await startSidecar({ policyFile: file, adminAddr: '127.0.0.1:0', egressAddr: '127.0.0.1:0', logger: silentLogger });
  try {
    expect(sidecar.sqlParserStarted()).toBe(false);
    const port = await freePort();
    policy(port);
    sidecar.store.check();
    for (let i = 0; i < 250 && !sidecar.ports.has('crm'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(sidecar.ports.get('crm')).toBe(port);
    expect(sidecar.sqlParserStarted()).toBe(true);
  } finally {
    await sidecar.stop(100);
  }
});
