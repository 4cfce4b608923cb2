// A held statement announces itself to the webhook configured in the `warden-notify` Secret
// (HMAC-signed), and the decision follows; the hold itself never waits on the receiver.
import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';
import { decideOverApi, holdDeletesRule } from '../../test/support/approvals';
import { crmPolicy, startStack, type Stack } from '../../test/support/stack';

interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
}

let stack: Stack;
let receiver: http.Server;
const deliveries: Delivery[] = [];

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const port = (receiver.address() as AddressInfo).port;
  stack = await startStack({
    setupSql: 'DROP TABLE IF EXISTS notes; CREATE TABLE notes (id int); INSERT INTO notes VALUES (1), (2);',
    policy: (pg) => crmPolicy(pg, holdDeletesRule()),
    sidecar: { localApprovals: true },
    beforeSidecar: (secretsDir) => {
      fs.mkdirSync(path.join(secretsDir, 'warden-notify'));
      fs.writeFileSync(path.join(secretsDir, 'warden-notify', 'webhook-url'), `http://127.0.0.1:${port}/hooks/warden?token=s3cr3t`);
      fs.writeFileSync(path.join(secretsDir, 'warden-notify', 'webhook-secret'), 'signing-key');
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  await new Promise<void>((r) => receiver.close(() => r()));
});

test('the approver is notified (signed JSON), then of the decision', async () => {
  const c = new Client({ connectionString: stack.agentUrl() });
  await c.connect();
  try {
    const running = c.query('DELETE FROM notes WHERE id = 1');
    for (let i = 0; i < 200 && deliveries.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(deliveries.length).toBeGreaterThanOrEqual(1);
    const created = deliveries[0];
    const expected =
      'sha256=' + createHmac('sha256', 'signing-key').update(`${created.headers['x-warden-timestamp']}.${created.body}`).digest('hex');
    expect(created.headers['x-warden-signature']).toBe(expected);
    const payload = JSON.parse(created.body) as { type: string; approval: { id: string; rule: string; operation: { display: string } } };
    expect(payload.type).toBe('approval.created');
    expect(payload.approval.rule).toBe('deletes-need-approval');
    expect(payload.approval.operation.display).toContain('DELETE FROM notes WHERE id = 1');
    expect(await decideOverApi(stack.sidecar, payload.approval.id, 'approve')).toBe(200);
    expect((await running).rowCount).toBe(1);
    for (let i = 0; i < 200 && deliveries.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(JSON.parse(deliveries[1].body).type).toBe('approval.decided');
  } finally {
    await c.end();
  }
});
