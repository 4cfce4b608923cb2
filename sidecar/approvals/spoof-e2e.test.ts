// Approvals cannot be spoofed (issue 10 §6): a held statement that hides text with a bidi override,
// a carriage return or terminal escape sequences is shown escaped in `warden approvals list` (table
// and JSON), the admin API, the webhook and Slack notifications; the approval still binds, and
// releases, the original bytes. Real sidecar, real PostgreSQL, real HTTP receivers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { runApprovalsCli } from '../../cli/run';
import { decideOverApi, holdDeletesRule, pendingApprovals } from '../../test/support/approvals';
import { startReceiver, type Received, type Receiver } from '../../test/support/http-receiver';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';
import { sqlDigest } from './operation';
import type { ApprovalRequest } from './types';

// Characters a terminal, browser or chat client acts on instead of showing.
const RAW_HIDDEN = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;

// Each one deletes every row (id > 0) but, rendered raw, reads as deleting only row 3.
const SPOOFS: Array<{ name: string; sql: string; shows: string }> = [
  {
    name: 'right-to-left override in a comment',
    sql: 'DELETE FROM notes WHERE id > 0 /*\u202e 3 = di EREHW \u202c*/',
    shows: 'DELETE FROM notes WHERE id > 0 /*\\u202e 3 = di EREHW \\u202c*/',
  },
  {
    name: 'carriage return overwriting the line',
    sql: 'DELETE FROM notes WHERE id > 0 /*\rDELETE FROM notes WHERE id = 3  */',
    shows: 'DELETE FROM notes WHERE id > 0 /*\\r\nDELETE FROM notes WHERE id = 3  */',
  },
  {
    name: 'ESC sequences that erase the line',
    sql: 'DELETE FROM notes WHERE id > 0 /*\x1b[2K\x1b[1GDELETE FROM notes WHERE id = 3 */',
    shows: 'DELETE FROM notes WHERE id > 0 /*\\x1b[2K\\x1b[1GDELETE FROM notes WHERE id = 3 */',
  },
];

let stack: Stack;
let receiver: Receiver;

beforeAll(async () => {
  receiver = await startReceiver();
  const port = receiver.port;
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS notes; CREATE TABLE notes (id int); INSERT INTO notes SELECT generate_series(1, 5);',
    policy: (pg) => crmPolicy(pg, holdDeletesRule()),
    sidecar: { localApprovals: true },
    beforeSidecar: (secretsDir) => {
      fs.mkdirSync(path.join(secretsDir, 'warden-notify'));
      fs.writeFileSync(path.join(secretsDir, 'warden-notify', 'webhook-url'), `http://127.0.0.1:${port}/webhook`);
      fs.writeFileSync(path.join(secretsDir, 'warden-notify', 'slack-url'), `http://127.0.0.1:${port}/slack`);
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

async function cli(argv: string[]): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runApprovalsCli(
    [...argv, '--admin-addr', `127.0.0.1:${stack.sidecar.adminPort}`],
    { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s) },
    {},
  );
  expect({ code, err }).toEqual({ code: 0, err: [] });
  return out.join('\n');
}

async function deliveriesFor(id: string, count: number): Promise<Received[]> {
  for (let i = 0; i < 500; i++) {
    const mine = receiver.got.filter((d) => d.body.includes(id));
    if (mine.length >= count) return mine;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`expected ${count} notification(s) for ${id}`);
}

test.each(SPOOFS)('$name: escaped everywhere an approver reads it; approving runs the original bytes', async ({ sql, shows }) => {
  await stack.admin('TRUNCATE notes; INSERT INTO notes SELECT generate_series(1, 5)');
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = c.query(sql);
    running.catch(() => undefined);
    const [rec] = await pendingApprovals(stack.sidecar);

    // The record: escaped display, a note that says so, the digest of the original text.
    expect(rec.operation.display.startsWith(shows)).toBe(true);
    expect(rec.operation.display).toMatch(
      /\n-- warden: \d+ invisible or control character\(s\) shown as .* escapes; the approval covers the original text$/,
    );
    expect(rec.operation.digest).toBe(sqlDigest(sql));

    // warden approvals list: the table is one line per request, with nothing raw in it.
    const table = await cli(['approvals', 'list']);
    expect(table).not.toMatch(RAW_HIDDEN);
    const row = table.split('\n').find((l) => l.startsWith(rec.id))!;
    expect(row).toContain('DELETE FROM notes WHERE id > 0 /*\\');
    expect(table.split('\n')).toHaveLength(2);

    // -o json and the admin API: the same record, nothing raw in the text.
    const json = await cli(['approvals', 'list', '-o', 'json']);
    expect(json).not.toMatch(RAW_HIDDEN);
    expect((JSON.parse(json) as ApprovalRequest[])[0].operation.display).toBe(rec.operation.display);
    const api = await (await fetch(`http://127.0.0.1:${stack.sidecar.adminPort}/approvals/${rec.id}`)).text();
    expect(api).not.toMatch(RAW_HIDDEN);

    // Webhook and Slack: the raw bodies carry no hidden character, and neither do the parsed texts.
    const created = await deliveriesFor(rec.id, 2);
    for (const d of created) {
      expect(d.body).not.toMatch(RAW_HIDDEN);
      expect(textsOf(JSON.parse(d.body)).join('\n')).not.toMatch(RAW_HIDDEN);
    }
    const webhook = JSON.parse(created.find((d) => d.path === '/webhook')!.body) as { approval: ApprovalRequest };
    expect(webhook.approval.operation.display.startsWith(shows)).toBe(true);
    const slack = created.find((d) => d.path === '/slack')!.body;
    expect(textsOf(JSON.parse(slack)).join('\n')).toContain('DELETE FROM notes WHERE id &gt; 0 /*\\');

    // The approval releases the statement as the agent sent it: every row goes, not just id 3.
    expect(await decideOverApi(stack.sidecar, rec.id, 'approve')).toBe(200);
    expect((await running).rowCount).toBe(5);
    expect(await stack.admin('SELECT count(*)::int AS n FROM notes')).toEqual([{ n: 0 }]);
  } finally {
    await c.end();
  }
});

test('the decided notifications and `warden approve` output stay escaped too', async () => {
  await stack.admin('TRUNCATE notes; INSERT INTO notes SELECT generate_series(1, 5)');
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = c.query(SPOOFS[0].sql);
    running.catch(() => undefined);
    const [rec] = await pendingApprovals(stack.sidecar);
    const out = await cli(['deny', rec.id, '--reason', 'no \u202eokay\u202c', '-o', 'table']);
    expect(out).toMatch(new RegExp(`^${rec.id} denied: denied by [^:]+: no \\\\u202eokay\\\\u202c$`));
    await expect(running).rejects.toThrow(/denied/);
    const decided = (await deliveriesFor(rec.id, 4)).slice(2);
    for (const d of decided) expect(textsOf(JSON.parse(d.body)).join('\n')).not.toMatch(RAW_HIDDEN);
    expect(await stack.admin('SELECT count(*)::int AS n FROM notes')).toEqual([{ n: 5 }]);
  } finally {
    await c.end();
  }
});

/** Every string inside a parsed JSON value. */
function textsOf(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(textsOf);
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(textsOf);
  return [];
}
