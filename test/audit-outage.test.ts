// Nothing lost: the collector goes away and comes back, the sidecar is killed (SIGKILL) in the
// middle of an outage and restarted on the same spool, the spool fills up under both policies.
// Real PostgreSQL, real `pg` client, the real OTLP receiver; the crash test runs the built
// `warden sidecar` command as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { ATTR, METRIC, SPAN } from '../common/audit/names';
import { crmPolicy, startPg, startStack, type Stack } from './support/stack';
import { startOtlpReceiver, type OtlpReceiver } from './support/otlp-receiver';
import { decodeRecord } from '../sidecar/audit/binary';
import { readSpoolDir } from '../sidecar/audit/segment';
import type { PgServer } from '../tools/pg-server';

const ROOT = path.resolve(__dirname, '..');
const BUILT = fs.existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'));

let pg: PgServer;
let receiver: OtlpReceiver;

beforeAll(async () => {
  pg = await startPg();
  receiver = await startOtlpReceiver();
}, 60_000);

afterAll(async () => {
  await receiver?.close();
  await pg?.stop();
});

beforeEach(() => receiver.reset());

/** Audit ids of the spans whose statement text contains marker, with how often each arrived. */
function arrivals(marker: string): Map<string, number> {
  const seen = new Map<string, number>();
  for (const s of receiver.spans()) {
    if (s.name !== SPAN.postgres || !String(s.attributes[ATTR.dbQueryText]).includes(marker)) continue;
    const id = String(s.attributes[ATTR.auditId]);
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  return seen;
}

/** Distinct statements (by their text) whose span arrived. */
function statementsArrived(marker: string): Set<string> {
  return new Set(
    receiver
      .spans()
      .filter((s) => s.name === SPAN.postgres && String(s.attributes[ATTR.dbQueryText]).includes(marker))
      .map((s) => String(s.attributes[ATTR.dbQueryText])),
  );
}

async function runStatements(url: string, marker: string, n: number): Promise<void> {
  const c = new Client({ connectionString: url });
  await c.connect();
  for (let i = 0; i < n; i++) await c.query(`SELECT '${marker}-${i}' AS m`);
  await c.end();
}

function stackWith(extraAudit: string, sidecar: Record<string, unknown>): Promise<Stack> {
  return startStack(
    {
      policy: (db) => crmPolicy(db, `  audit:\n${extraAudit}`),
      sidecar: {
        audit: undefined,
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
        auditTiming: { lingerMs: 10, maxBackoffMs: 200, metricsIntervalMs: 60_000 },
        ...sidecar,
      },
    },
    pg,
  );
}

test('collector down, then back: every record arrives, each once or with the same audit id', async () => {
  const stack = await stackWith('    payloads: false\n', {});
  try {
    await receiver.down();
    await runStatements(stack.agentUrl(), 'outage-a', 150);
    await new Promise((r) => setTimeout(r, 400)); // the shipper fails and backs off meanwhile
    expect(stack.sidecar.audit!.spool.stats().pending).toBeGreaterThanOrEqual(150);
    await receiver.up();
    await receiver.waitFor(() => statementsArrived('outage-a').size === 150, 20_000);
    const ids = arrivals('outage-a');
    expect(ids.size).toBe(150);
    await stack.sidecar.audit!.drain(5000);
    expect(stack.sidecar.audit!.spool.stats().pending).toBe(0);
  } finally {
    await receiver.up().catch(() => undefined);
    await stack.stop();
  }
});

test('spool full with whenSpoolFull: block refuses new operations (42501 saying why) until the collector catches up', async () => {
  const stack = await stackWith('    whenSpoolFull: block\n', { spoolMaxBytes: 48 * 1024 });
  try {
    await receiver.down();
    const c = new Client({ connectionString: stack.agentUrl() });
    c.on('error', () => undefined);
    await c.connect();
    let refused: { code?: string; message: string } | undefined;
    let ran = 0;
    for (let i = 0; i < 400 && !refused; i++) {
      try {
        await c.query(`SELECT 'full-b-${i}' AS m`);
        ran++;
      } catch (err) {
        refused = err as { code?: string; message: string };
      }
    }
    expect(refused?.code).toBe('42501');
    expect(refused?.message).toContain('audit trail is full');
    expect(ran).toBeGreaterThan(10);
    // Every statement that ran was recorded: none was lost to the full spool.
    await receiver.up();
    // ...and so was the refusal itself (room is kept for the records of operations in flight).
    await receiver.waitFor(() => statementsArrived('full-b').size >= ran + 1, 20_000);
    expect(statementsArrived('full-b').size).toBe(ran + 1);
    // With room again, statements run.
    await stack.sidecar.audit!.drain(5000);
    await expect(c.query(`SELECT 'full-b-after' AS m`)).resolves.toBeDefined();
    await c.end();
  } finally {
    await receiver.up().catch(() => undefined);
    await stack.stop();
  }
});

test('spool full with whenSpoolFull: drop-oldest keeps serving and counts what it dropped', async () => {
  const stack = await stackWith('    whenSpoolFull: drop-oldest\n', { spoolMaxBytes: 48 * 1024 });
  try {
    await receiver.down();
    await runStatements(stack.agentUrl(), 'full-d', 300);
    const text = await (await fetch(`http://127.0.0.1:${stack.sidecar.adminPort}/metrics`)).text();
    const dropped = Number(new RegExp(`${METRIC.spoolDropped}(?:\\{[^}]*\\})? (\\d+)`).exec(text)?.[1] ?? 0);
    expect(dropped).toBeGreaterThan(0);
    await receiver.up();
    await stack.sidecar.audit!.drain(10_000);
    // The newest records survived (the oldest were dropped from the spool; a batch the shipper was
    // already retrying may still arrive).
    const arrived = statementsArrived('full-d');
    expect([...arrived].some((t) => t.includes("'full-d-299'"))).toBe(true);
    expect(arrived.size).toBeLessThan(300);
    expect(stack.sidecar.audit!.spool.stats().dropped).toBe(dropped);
  } finally {
    await receiver.up().catch(() => undefined);
    await stack.stop();
  }
});

test("a statement's record is in the spool file (the kernel) by the time the agent has its result", async () => {
  const stack = await stackWith('    payloads: false\n', {});
  try {
    const dir = stack.sidecar.audit!.spool.dir;
    const c = new Client({ connectionString: stack.agentUrl() });
    await c.connect();
    for (let i = 0; i < 20; i++) {
      await c.query(`SELECT 'in-kernel-${i}' AS m`);
      // Read the segment files the moment the answer is here, as another process would.
      const texts = [...readSpoolDir(dir)].map((e) => decodeRecord(e.payload).db?.text ?? '');
      expect(texts.some((t) => t.includes(`'in-kernel-${i}'`))).toBe(true);
    }
    await c.end();
  } finally {
    await stack.stop();
  }
});

test('the export thread dies mid-outage: it is restarted and every record still arrives (re-read from the spool)', async () => {
  const stack = await stackWith('    payloads: false\n', {});
  try {
    const thread = stack.sidecar.audit!.exportThread!;
    expect(thread).toBeDefined();
    await receiver.down();
    await runStatements(stack.agentUrl(), 'thread-k', 30);
    await thread.kill();
    await runStatements(stack.agentUrl(), 'thread-l', 10);
    await receiver.up();
    await receiver.waitFor(() => statementsArrived('thread-k').size === 30 && statementsArrived('thread-l').size === 10, 20_000);
    expect(thread.restarts).toBeGreaterThanOrEqual(1);
    expect(await stack.sidecar.audit!.drain(5000)).toBe(true);
    expect(stack.sidecar.audit!.spool.stats().pending).toBe(0);
  } finally {
    await receiver.up().catch(() => undefined);
    await stack.stop();
  }
});

(BUILT ? describe : describe.skip)('restart mid-outage (built `warden sidecar`, killed with SIGKILL)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-crash-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function startProcess(policyFile: string, spool: string): Promise<{ child: ChildProcess; port: number }> {
    const child = spawn(
      process.execPath,
      [
        path.join(ROOT, 'bin', 'warden'),
        'sidecar',
        '--policy',
        policyFile,
        '--secrets-dir',
        path.join(dir, 'secrets'),
        '--admin-addr',
        '127.0.0.1:0',
        '--egress-addr',
        '127.0.0.1:0',
        '--spool-dir',
        spool,
      ],
      {
        env: {
          ...process.env,
          NODE_OPTIONS: '',
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=agent-7d9f,k8s.namespace.name=agents',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!out.includes('sidecar ready')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`sidecar did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { child, port: 0 };
  }

  test('records of statements the agent saw complete survive a SIGKILL and are delivered after restart (OTLP http/json, resource from OTEL_RESOURCE_ATTRIBUTES)', async () => {
    const listenPort = 20000 + Math.floor(Math.random() * 20000);
    fs.mkdirSync(path.join(dir, 'secrets', 'crm-db'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'secrets', 'crm-db', 'username'), pg.user);
    fs.writeFileSync(path.join(dir, 'secrets', 'crm-db', 'password'), pg.password);
    const policyFile = path.join(dir, 'policy.yaml');
    fs.writeFileSync(
      policyFile,
      crmPolicy(pg, '').replace('listenPort: 15432', `listenPort: ${listenPort}`).replace('database: crm', 'database: postgres'),
    );
    const spool = path.join(dir, 'spool');
    await receiver.down();
    const first = await startProcess(policyFile, spool);
    await runStatements(`postgresql://agent@127.0.0.1:${listenPort}/postgres`, 'crash-c', 40);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const second = await startProcess(policyFile, spool);
    try {
      await receiver.up();
      await receiver.waitFor(() => statementsArrived('crash-c').size === 40, 20_000);
      expect(statementsArrived('crash-c').size).toBe(40);
      // The standard resource variables name the pod (the operator fills them from the downward API),
      // and http/json export works as well as the default protobuf.
      const span = receiver.spans().find((x) => String(x.attributes[ATTR.dbQueryText]).includes('crash-c'))!;
      expect(span.resource).toMatchObject({
        'k8s.pod.name': 'agent-7d9f',
        'k8s.namespace.name': 'agents',
        'service.name': 'warden-sidecar',
      });
      expect(receiver.raw().some((r) => r.contentType.startsWith('application/json'))).toBe(true);
    } finally {
      second.child.kill('SIGTERM');
      await new Promise((r) => second.child.once('exit', r));
    }
  });
});

test('no OTLP endpoint: records still go to the spool (for replay) and never block', async () => {
  const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-replay-only-'));
  const stack = await startStack(
    {
      policy: (db) => crmPolicy(db, '  audit:\n    whenSpoolFull: block\n'),
      sidecar: { audit: undefined, spoolDir, spoolMaxBytes: 48 * 1024 },
    },
    pg,
  );
  try {
    await runStatements(stack.agentUrl(), 'local-only', 5);
    expect(stack.sidecar.audit!.spool.stats().lastSeq).toBeGreaterThanOrEqual(5);
    expect(receiver.requests).toBe(0);
  } finally {
    await stack.stop();
    fs.rmSync(spoolDir, { recursive: true, force: true });
  }
});
