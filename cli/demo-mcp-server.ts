// The demo's sample MCP server: the official SDK's McpServer over streamable HTTP (event-stream
// answers, sessions) on loopback, with CRM tools whose results carry personal data (so the demo can
// show masking), a destructive tool, and a query tool. It records which tools were called and
// which credential reached it, so the demo can show what never arrived.
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

export interface DemoMcp {
  /** `http://127.0.0.1:<port>/mcp` */
  url: string;
  /** Tool calls the server ran, as `name(arguments as JSON)`, in order. */
  calls: string[];
  /** Authorization headers the server received, in order. */
  seenAuthorization: string[];
  close(): Promise<void>;
}

const CUSTOMERS = [
  { id: 1, name: 'Ada Lovelace', email: 'ada@example.com', card: '4111 1111 1111 1111', ssn: '123-45-6789' },
  { id: 2, name: 'Grace Hopper', email: 'grace@navy.example', card: '5500-0000-0000-0004', ssn: '219-09-9999' },
];

function newServer(calls: string[]): McpServer {
  const server = new McpServer({ name: 'demo-crm-tools', version: '1.0.0' });
  const record = (name: string, args: unknown): void => void calls.push(`${name}(${JSON.stringify(args)})`);
  server.registerTool(
    'search_customers',
    { description: 'Search CRM customers by name', inputSchema: { query: z.string() } },
    ({ query }) => {
      record('search_customers', { query });
      const found = CUSTOMERS.filter((c) => c.name.toLowerCase().includes(query.toLowerCase()));
      return {
        content: [{ type: 'text', text: found.map((c) => `${c.name} <${c.email}>, card ${c.card}, SSN ${c.ssn}`).join('\n') || 'none' }],
        structuredContent: { customers: found },
      };
    },
  );
  server.registerTool(
    'delete_customer',
    { description: 'Delete a CRM customer and all their orders', inputSchema: { id: z.number() } },
    ({ id }) => {
      record('delete_customer', { id });
      return { content: [{ type: 'text', text: `customer ${id} deleted` }] };
    },
  );
  server.registerTool(
    'run_query',
    { description: 'Run a SQL statement on a CRM database', inputSchema: { database: z.string(), sql: z.string() } },
    ({ database, sql }) => {
      record('run_query', { database, sql });
      return { content: [{ type: 'text', text: `ran on ${database}: ${sql} (1 row affected)` }] };
    },
  );
  return server;
}

export async function startDemoMcp(): Promise<DemoMcp> {
  const calls: string[] = [];
  const seenAuthorization: string[] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    seenAuthorization.push(String(req.headers.authorization ?? ''));
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
    if (!transport) {
      if (typeof sid === 'string' || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
        return;
      }
      const t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void transports.set(id, t),
      });
      t.onclose = () => void (t.sessionId && transports.delete(t.sessionId));
      await newServer(calls).connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res);
  };
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    calls,
    seenAuthorization,
    async close() {
      for (const t of transports.values()) await t.close().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
