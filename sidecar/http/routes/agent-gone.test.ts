// An agent that goes away while its request waits for the upstream aborts the upstream request
// (its connection is closed, not left to the target's timeout), and the record says so.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import { compilePolicy } from '../../../common/policy/compile';
import type { Identity } from '../../../common/policy/types';
import { SecretStore } from '../../secrets';
import type { HttpAuditEvent } from '../../audit/events';
import { createRouteHandler, type RouteHandler } from './route-proxy';

const identity: Identity = { subject: 'agent', groups: [], source: 'pod' };
let upstream: http.Server;
let server: http.Server;
let handler: RouteHandler;
let port: number;
const audits: HttpAuditEvent[] = [];
let arrived: () => void;
let upstreamClosed: () => void;

beforeAll(async () => {
  // Never answers; reports when a request arrives and when its connection closes.
  upstream = http.createServer((req) => {
    req.socket.once('close', () => upstreamClosed());
    arrived();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const policy = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'agent-gone' },
    spec: {
      defaultAction: 'allow',
      targets: [{ name: 'svc', http: { baseUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, timeout: '30s' } }],
    },
  });
  handler = createRouteHandler({ policy: () => policy, secrets: new SecretStore(undefined), identity, audit: (e) => audits.push(e) });
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await handler.close();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

test('the agent closing its connection aborts the waiting upstream request at once', async () => {
  const gotThere = new Promise<void>((r) => (arrived = r));
  const closed = new Promise<void>((r) => (upstreamClosed = r));
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => undefined);
  sock.write('GET /svc/wait HTTP/1.1\r\nHost: x\r\n\r\n');
  await gotThere;
  const t0 = Date.now();
  sock.destroy();
  await closed;
  expect(Date.now() - t0).toBeLessThan(5000); // not the target's 30 s timeout
  for (let i = 0; i < 50 && audits.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(audits.at(-1)).toMatchObject({ target: 'svc', error: expect.stringMatching(/closed/) });
});
