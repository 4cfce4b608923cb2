// The `warden sidecar` command as a user runs it: a separate process started by bin/warden
// (built by `make test` before jest runs), serving a real PostgreSQL.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { crmPolicy } from '../test/support/stack';
import { freePort, startPgServer, type PgServer } from '../tools/pg-server';

const BIN = path.join(__dirname, '..', 'bin', 'warden');

let pg: PgServer;
let dir: string;

beforeAll(async () => {
  pg = await startPgServer();
  const c = new Client({ connectionString: pg.url() });
  await c.connect();
  await c.query('CREATE DATABASE crm');
  await c.end();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cli-'));
  fs.mkdirSync(path.join(dir, 'secrets', 'crm-db'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'secrets', 'crm-db', 'username'), pg.user);
  fs.writeFileSync(path.join(dir, 'secrets', 'crm-db', 'password'), pg.password);
});

afterAll(async () => {
  await pg?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function startCli(args: string[]): { proc: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, output: () => out, exited };
}

async function waitFor(url: string, timeoutMs: number): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fetch(url);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('serves the policy, answers health, readiness and metrics, and stops cleanly on SIGTERM', async () => {
  const listen = await freePort();
  const admin = await freePort();
  const policyFile = path.join(dir, 'policy.yaml');
  fs.writeFileSync(
    policyFile,
    crmPolicy(
      pg,
      `  rules:
    - name: no-ddl
      action: deny
      match: {sql: {statements: [DROP]}}
`,
    ).replace('listenPort: 15432', `listenPort: ${listen}`),
  );
  const cli = startCli([
    'sidecar',
    '--policy',
    policyFile,
    '--secrets-dir',
    path.join(dir, 'secrets'),
    '--admin-addr',
    `127.0.0.1:${admin}`,
    '--egress-addr',
    '127.0.0.1:0',
  ]);
  try {
    expect((await waitFor(`http://127.0.0.1:${admin}/healthz`, 15_000)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${admin}/readyz`)).status).toBe(200);
    const c = new Client({ connectionString: `postgresql://anyone@127.0.0.1:${listen}/crm` });
    await c.connect();
    expect((await c.query('SELECT 40 + 2 AS n')).rows[0].n).toBe(42);
    await expect(c.query('DROP TABLE nothing')).rejects.toMatchObject({ code: '42501' });
    // The compiled parser worker thread: a parser failure is refused, and so (by default) is a syntax error.
    await expect(c.query(`SELECT 1${'+1'.repeat(12_000)}`)).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('could not be classified'),
    });
    await expect(c.query('SELEC 1')).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('could not be parsed') });
    expect((await c.query('SELECT 1 AS n WHERE true')).rows[0].n).toBe(1);
    await c.end();
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(metrics).toMatch(/warden_operations_total\{decision="deny",rule="no-ddl",target="crm"\} 1/);
    expect(metrics).not.toContain(pg.password);
    cli.proc.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(cli.output()).not.toContain(pg.password);
  } finally {
    cli.proc.kill('SIGKILL');
  }
});

test('an invalid policy stops startup with field-named errors and exit code 1', async () => {
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(
    bad,
    crmPolicy(
      pg,
      `  rules:
    - name: oops
      action: explode
      match: {sql: {statements: [DROPP]}}
`,
    ),
  );
  const cli = startCli([
    'sidecar',
    '--policy',
    bad,
    '--secrets-dir',
    path.join(dir, 'secrets'),
    '--admin-addr',
    '127.0.0.1:0',
    '--egress-addr',
    '127.0.0.1:0',
  ]);
  expect(await cli.exited).toBe(1);
  expect(cli.output()).toContain('spec.rules[0].action');
  expect(cli.output()).toContain('spec.rules[0].match.sql.statements[0]');
});

test('validate reports valid and invalid files with exit codes', async () => {
  const root = path.join(__dirname, '..');
  const ok = startCli(['validate', path.join(root, 'examples', 'policy.yaml')]);
  expect(await ok.exited).toBe(0);
  expect(ok.output()).toContain('valid');
  const bad = startCli(['validate', path.join(root, 'examples', 'invalid-policy.yaml')]);
  expect(await bad.exited).toBe(1);
  expect(bad.output()).toMatch(/spec\.\S+: /);
});
