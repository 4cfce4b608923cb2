// `warden demo`: a real PostgreSQL with a CRM full of PII, a sample LLM API and a sample MCP server,
// the sidecar enforcing examples/policy.yaml plus the crm-tools MCP target and rules of
// examples/mcp-policy.yaml, and a scripted agent. Prints what was allowed, masked, denied and held.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, type QueryResult } from 'pg';
import { parseDocument } from 'yaml';
import { silentLogger } from '../common/log';
import { findRepoRoot } from '../common/policy/schema';
import { startSidecar, type RunningSidecar } from '../sidecar/main';
import { LOCAL_APPROVERS_GROUP } from '../sidecar/approvals/admin-api';
import type { ApprovalRequest } from '../sidecar/approvals/types';
import { decideApproval, listApprovals } from './approvals';
import type { CliContext, CliIo } from './context';
import type { StatementEvent } from '../sidecar/audit/events';
import { startPgServer } from '../tools/pg-server';
import { startDemoLlm, type DemoLlm } from './demo-llm';
import { mcpSteps } from './demo-mcp';
import { startDemoMcp } from './demo-mcp-server';

interface Io {
  stdout(s: string): void;
  stderr(s: string): void;
}

const CRM_SQL = `
CREATE TABLE customers (
  id int PRIMARY KEY, name text NOT NULL, email text, phone text,
  card_number text, ssn text, notes text);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, total numeric(10,2), placed_at timestamptz DEFAULT now());
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '+1 415 555 2671', '4111 1111 1111 1111', '123-45-6789', 'VIP; prefers email'),
  (2, 'Grace Hopper', 'grace@navy.example', '(212) 555-0182', '5500-0000-0000-0004', '219-09-9999', 'Card on file 4012888888881881, call before shipping'),
  (3, 'Alan Turing', 'alan@bletchley.example', '+44 20 7946 0958', '340000000000009', '078-05-1120', 'Refund to IBAN GB82 WEST 1234 5698 7654 32');
INSERT INTO orders (customer_id, total) VALUES (1, 120.50), (2, 89.99), (3, 42.00), (1, 15.25);
`;

interface Step {
  title: string;
  sql: string;
  /** For a held statement: what the demo's approver decides with `warden approve|deny`. */
  decide?: { verdict: 'approve' | 'deny'; reason: string; showList?: boolean };
}

const STEPS: Step[] = [
  {
    title: 'read customers (columns masked, PII in notes detected)',
    sql: 'SELECT id, name, email, card_number, ssn, notes FROM customers ORDER BY id',
  },
  { title: 'aggregate orders', sql: 'SELECT count(*) AS orders, sum(total) AS revenue FROM orders' },
  { title: 'try to drop a table', sql: 'DROP TABLE customers' },
  { title: 'try to read a server file', sql: 'SELECT pg_catalog."pg_read_file"(\'/etc/passwd\')' },
  { title: 'hide a DROP after a harmless SELECT', sql: 'SELECT 1; /* cleanup */ dRoP TABLE orders' },
  { title: 'try an anonymous code block', sql: "DO $$ BEGIN EXECUTE 'DELETE FROM orders'; END $$" },
  {
    title: 'delete through a writable CTE (held; the approver approves)',
    sql: 'WITH gone AS (DELETE FROM orders WHERE total < 20 RETURNING id) SELECT count(*) FROM gone',
    decide: { verdict: 'approve', reason: 'duplicate test order, ticket OPS-1234' },
  },
  {
    title: 'update a record (held; the approver denies)',
    sql: "UPDATE customers SET notes = 'churned' WHERE id = 3",
    decide: { verdict: 'deny', reason: 'customer is still active' },
  },
];

type YamlSeq = { items: unknown[]; add(v: unknown): void };

function demoPolicy(root: string, pgPort: number, listenPort: number, llmPort: number, mcpUrl: string): string {
  const doc = parseDocument(fs.readFileSync(path.join(root, 'examples', 'policy.yaml'), 'utf8'));
  // The MCP server's target, rules and masking come from examples/mcp-policy.yaml, pointed at the sample server.
  const mcp = parseDocument(fs.readFileSync(path.join(root, 'examples', 'mcp-policy.yaml'), 'utf8'));
  mcp.setIn(['spec', 'targets', 0, 'mcp', 'url'], mcpUrl);
  for (const key of ['targets', 'rules', 'masking']) {
    const into = doc.getIn(['spec', key]) as YamlSeq;
    for (const item of (mcp.getIn(['spec', key]) as YamlSeq).items) into.add(item);
  }
  const targets = doc.getIn(['spec', 'targets']) as { items: Array<{ get(k: string): unknown }> };
  for (const t of targets.items) {
    const pg = t.get('postgres') as { set(k: string, v: unknown): void } | undefined;
    if (pg) {
      pg.set('port', pgPort);
      pg.set('listenPort', listenPort);
      pg.set('tls', 'disable');
    }
    const api = t.get('http') as { set(k: string, v: unknown): void } | undefined;
    api?.set('baseUrl', `http://127.0.0.1:${llmPort}`); // the sample LLM API stands in for api.openai.com
  }
  // The demo's approver is you, the local user (--local-approvals): let that group decide holds.
  const rules = doc.getIn(['spec', 'rules']) as { items: Array<{ getIn(p: string[]): unknown }> };
  for (const r of rules.items) {
    const groups = r.getIn(['approval', 'approvers', 'groups']) as { add(v: unknown): void } | undefined;
    groups?.add(LOCAL_APPROVERS_GROUP);
  }
  return doc.toString();
}

/** The approver's command line, run in this process: no token (--local-approvals trusts loopback), no Kubernetes. */
function approverContext(io: CliIo): CliContext {
  return { io, env: {}, invokedAs: 'warden', signals: process };
}

const LLM_TOKEN = 'sk-demo-real-key-kept-by-the-sidecar';
const MCP_TOKEN = 'mcp-demo-token-kept-by-the-sidecar';

/** Waits for the held statement's approval request, then decides it the way an approver would: `warden approve|deny`. */
async function decideHeld(io: Io, sidecar: RunningSidecar, decide: NonNullable<Step['decide']>, running: Promise<unknown>): Promise<void> {
  let pending: ApprovalRequest | undefined;
  let settled = false;
  running.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 200 && !pending && !settled; i++) {
    pending = (await sidecar.approvals?.list({ state: 'pending' }))?.[0];
    if (!pending) await new Promise((r) => setTimeout(r, 25));
  }
  if (!pending) return;
  io.stdout(`   HELD    approval request ${pending.id} (rule "${pending.rule}"), the agent waits`);
  if (decide.showList) {
    // What the approver sees first: the pending request with what it would run.
    io.stdout('   approver> warden approvals list');
    const listed: string[] = [];
    const into = { stdout: (t: string) => void listed.push(t.trimEnd()), stderr: (t: string) => void listed.push(t.trimEnd()) };
    await listApprovals({ adminAddr: `127.0.0.1:${sidecar.adminPort}`, output: 'table' }, approverContext(into));
    for (const line of listed.join('\n').split('\n')) io.stdout(`   ${line}`);
  }
  const cmd =
    decide.verdict === 'approve' ? ['approve', pending.id, '--reason', decide.reason] : ['deny', pending.id, '--reason', decide.reason];
  io.stdout(`   approver> warden ${cmd.map((c) => (c.includes(' ') ? `"${c}"` : c)).join(' ')}`);
  const out: string[] = [];
  const capture = { stdout: (t: string) => void out.push(t.trimEnd()), stderr: (t: string) => void out.push(t.trimEnd()) };
  // What `warden approve|deny ID --reason TEXT --admin-addr ...` runs, called directly.
  await decideApproval(
    { verdict: decide.verdict, name: pending.id, reason: decide.reason },
    { adminAddr: `127.0.0.1:${sidecar.adminPort}`, output: 'table' },
    approverContext(capture),
  ).catch((e: Error) => capture.stderr(`warden ${decide.verdict}: ${e.message}`));
  for (const line of out) io.stdout(`   ${line}`);
}

async function httpSteps(io: Io, egressPort: number, llm: DemoLlm, tally: Record<string, number>): Promise<void> {
  const base = `http://127.0.0.1:${egressPort}/openai`;
  io.stdout(`the agent's OpenAI client uses base URL ${base}/v1 with api key "warden-managed"\n`);
  io.stdout(
    `${STEPS.length + 1}. ask the LLM about a customer (response masked on its way back)\n   agent> POST /openai/v1/chat/completions`,
  );
  const chat = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer warden-managed' },
    body: JSON.stringify({ model: 'demo-model', messages: [{ role: 'user', content: 'How do I reach Ada?' }] }),
  });
  const answer = (await chat.json()) as { choices: Array<{ message: { content: string } }> };
  const content = answer.choices[0].message.content;
  const masked = content.includes('[REDACTED]');
  tally[masked ? 'masked' : 'allowed']++;
  io.stdout(`   ${masked ? 'MASKED ' : 'ALLOWED'}  ${content}`);
  const seen = llm.seenAuthorization.at(-1) ?? '';
  io.stdout(
    `   the API received the sidecar's credential (${seen === `Bearer ${LLM_TOKEN}` ? 'Bearer sk-demo-…, not the placeholder' : 'UNEXPECTED'})\n`,
  );
  io.stdout(`${STEPS.length + 2}. try to upload a file to the LLM provider\n   agent> POST /openai/v1/files`);
  const upload = await fetch(`${base}/v1/files`, { method: 'POST', body: 'secret training data' });
  const body = (await upload.json()) as { error?: { rule?: string; message?: string } };
  if (upload.status === 403) tally.denied++;
  io.stdout(
    `   ${upload.status === 403 ? 'DENIED' : `HTTP ${upload.status}`}  ${body.error?.message ?? ''} (rule "${body.error?.rule ?? ''}")\n`,
  );
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export async function runDemo(io: Io): Promise<number> {
  const root = findRepoRoot();
  io.stdout('Agent Warden demo\n=================\n');
  io.stdout('starting PostgreSQL (embedded, SCRAM-SHA-256) with a sample CRM ...');
  const pg = await startPgServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-'));
  let stop: (() => Promise<void>) | undefined;
  let stopLlm: (() => Promise<void>) | undefined;
  let stopMcp: (() => Promise<void>) | undefined;
  try {
    const su = new Client({ connectionString: pg.url() });
    await su.connect();
    await su.query('CREATE DATABASE crm');
    await su.query("CREATE ROLE support_agent LOGIN PASSWORD 'demo-only-s3cret'");
    await su.end();
    const crm = new Client({ connectionString: pg.url('crm') });
    await crm.connect();
    await crm.query(CRM_SQL);
    await crm.query(
      'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO support_agent; GRANT CREATE ON SCHEMA public TO support_agent',
    );
    await crm.end();

    const secrets = path.join(dir, 'secrets', 'crm-db');
    fs.mkdirSync(secrets, { recursive: true });
    fs.writeFileSync(path.join(secrets, 'username'), 'support_agent');
    fs.writeFileSync(path.join(secrets, 'password'), 'demo-only-s3cret');
    const policyFile = path.join(dir, 'policy.yaml');
    const llm = await startDemoLlm();
    stopLlm = () => llm.close();
    fs.mkdirSync(path.join(dir, 'secrets', 'openai'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'secrets', 'openai', 'token'), LLM_TOKEN);
    const mcpServer = await startDemoMcp();
    stopMcp = () => mcpServer.close();
    fs.mkdirSync(path.join(dir, 'secrets', 'crm-tools'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'secrets', 'crm-tools', 'token'), MCP_TOKEN);
    fs.writeFileSync(policyFile, demoPolicy(root, pg.port, 15432, llm.port, mcpServer.url)); // listenPort is overridden below: any free port

    const events: StatementEvent[] = [];
    const sidecar = await startSidecar({
      policyFile,
      secretsDir: path.join(dir, 'secrets'),
      adminAddr: '127.0.0.1:0',
      egressAddr: '127.0.0.1:0',
      portOverrides: { crm: 0 },
      logger: silentLogger,
      localApprovals: true,
      audit: { statement: (e) => events.push(e), session: () => undefined },
    });
    stop = () => sidecar.stop(500);
    const port = sidecar.ports.get('crm')!;
    io.stdout(
      `sidecar enforcing policy "${sidecar.store.current.name}" (examples/policy.yaml + the MCP target of examples/mcp-policy.yaml) on 127.0.0.1:${port}`,
    );
    io.stdout(`the agent connects to postgresql://agent@127.0.0.1:${port}/crm: no password; the sidecar holds the credential\n`);

    const agent = new Client({ connectionString: `postgresql://agent@127.0.0.1:${port}/crm` });
    await agent.connect();
    const tally: Record<string, number> = { allowed: 0, masked: 0, denied: 0, held: 0 };
    for (const [i, step] of STEPS.entries()) {
      io.stdout(`${i + 1}. ${step.title}\n   agent> ${step.sql}`);
      const before = events.length;
      try {
        const running = agent.query(step.sql);
        if (step.decide) await decideHeld(io, sidecar, step.decide, running);
        const r = await running;
        const masked = events.slice(before).reduce((n, e) => n + e.masked, 0);
        if (step.decide) tally.held++;
        else if (masked > 0) tally.masked++;
        else tally.allowed++;
        io.stdout(`   ${step.decide ? 'HELD -> APPROVED, ran' : masked > 0 ? `MASKED  (${masked} values)` : 'ALLOWED'}`);
        // A statement list answers with one result per statement: show the last.
        const rows = ((Array.isArray(r) ? r[r.length - 1] : r) as QueryResult<Record<string, unknown>>).rows;
        for (const row of rows.slice(0, 5))
          io.stdout(
            '     ' +
              Object.values(row)
                .map((v) => pad(String(v), 4))
                .join(' | '),
          );
      } catch (err) {
        const e = err as { message: string; detail?: string };
        const held = step.decide !== undefined;
        if (held) tally.held++;
        else tally.denied++;
        io.stdout(`   ${held ? 'HELD -> DENIED' : 'DENIED'}  ${e.message}${e.detail ? `\n           (${e.detail})` : ''}`);
      }
      io.stdout('');
    }
    await agent.end();
    await httpSteps(io, sidecar.egressPort, llm, tally);
    const mcpUnexpected = await mcpSteps({
      io,
      endpoint: `http://127.0.0.1:${sidecar.egressPort}/crm-tools`,
      server: mcpServer,
      token: MCP_TOKEN,
      first: STEPS.length + 3,
      tally,
      decideHeld: (decide, running) => decideHeld(io, sidecar, decide, running),
    });
    const check = new Client({ connectionString: pg.url('crm') });
    await check.connect();
    const tables = (await check.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'")).rows[0].n;
    const orders = (await check.query<{ n: number }>('SELECT count(*)::int AS n FROM orders')).rows[0].n;
    await check.end();
    io.stdout(
      `summary: ${tally.allowed} allowed, ${tally.masked} masked, ${tally.denied} denied, ${tally.held} held (decided by the local approver through \`warden approve|deny\`)`,
    );
    // Only the approved DELETE (the one order under 20) may have changed anything.
    const intact = tables === 2 && orders === 3;
    io.stdout(
      intact
        ? `database afterwards: ${tables} tables, ${orders} orders: nothing the policy forbids reached it.`
        : `database afterwards: ${tables} tables, ${orders} orders: UNEXPECTED (expected 2 tables and 3 orders)`,
    );
    for (const u of mcpUnexpected) io.stdout(`UNEXPECTED: ${u}`);
    return intact && mcpUnexpected.length === 0 ? 0 : 1;
  } finally {
    await stop?.();
    await stopLlm?.();
    await stopMcp?.();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
