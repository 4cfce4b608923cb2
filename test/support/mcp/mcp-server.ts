// Test fixture: a real MCP server (the official @modelcontextprotocol/sdk McpServer over its
// StreamableHTTPServerTransport) on 127.0.0.1:0, in JSON (`enableJsonResponse`) or SSE response
// mode, stateful (Mcp-Session-Id) or stateless. It records every HTTP request it receives (method,
// headers, parsed body), so a test can prove a denied call never reached it.
//
// Tools:
//   search_customers {query}        → text and structuredContent with PII (email, card, SSN)
//   delete_customer {id}            → "deleted <id>" (the destructive one)
//   run_query {database, sql}       → "ran <sql> on <database>"
//   get_weather {city}              → its definition can be changed mid-session (changeWeatherTool)
//   long_task {steps}               → sends progress (with the request's progressToken) and log notifications
//   echo_auth {}                    → echoes the Authorization header the server received (credential scrub)
//   held_echo {text}                → echoes text (for hold tests)
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { McpServer, type RegisteredTool } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

export const CUSTOMER_EMAIL = 'alice.smith@example.com';
export const CUSTOMER_CARD = '4111 1111 1111 1111';
export const CUSTOMER_SSN = '123-45-6789';
export const WEATHER_DESCRIPTION = 'Current weather for a city';

export interface ReceivedRequest {
  method: string;
  headers: http.IncomingHttpHeaders;
  /** The parsed JSON body of a POST (undefined otherwise). */
  body: unknown;
}

export interface McpFixture {
  /** `http://127.0.0.1:<port>/mcp` */
  url: string;
  port: number;
  received: ReceivedRequest[];
  /** The ids delete_customer actually deleted (the effect, as the server's own tool code saw it). */
  deleted: string[];
  /** JSON-RPC methods received (each message of a batch), in order; tools/call as `tools/call:<name>`. */
  methods(): string[];
  /** Changes get_weather's description on every session (the server sends notifications/tools/list_changed). */
  changeWeatherTool(description: string): void;
  close(): Promise<void>;
}

export interface McpFixtureOptions {
  /** JSON responses instead of SSE streams (default false: SSE). */
  json?: boolean;
  /** No sessions: a new server and transport per request (default false). */
  stateless?: boolean;
  /**
   * A protocol version the SDK does not know (the stateless 2026-07-28 revision): requests that
   * carry it are recorded as received, then served as the SDK's latest version.
   */
  acceptVersion?: string;
}

export async function startMcpFixture(opts: McpFixtureOptions = {}): Promise<McpFixture> {
  const received: ReceivedRequest[] = [];
  const deleted: string[] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const weatherTools = new Set<RegisteredTool>();
  let weatherDescription = WEATHER_DESCRIPTION;

  const newServer = (): McpServer => {
    const server = new McpServer({ name: 'warden-test-tools', version: '1.0.0' }, { capabilities: { logging: {} } });
    server.registerTool(
      'search_customers',
      { description: 'Search customers by name', inputSchema: { query: z.string() } },
      ({ query }) => ({
        content: [{ type: 'text', text: `Found ${query}: email ${CUSTOMER_EMAIL}, card ${CUSTOMER_CARD}, ssn ${CUSTOMER_SSN}` }],
        structuredContent: { customers: [{ name: query, email: CUSTOMER_EMAIL, card: CUSTOMER_CARD }] },
      }),
    );
    server.registerTool('delete_customer', { description: 'Delete a customer', inputSchema: { id: z.string() } }, ({ id }) => {
      deleted.push(id);
      return { content: [{ type: 'text', text: `deleted ${id}` }] };
    });
    server.registerTool(
      'run_query',
      { description: 'Run a SQL query', inputSchema: { database: z.string(), sql: z.string() } },
      ({ database, sql }) => ({ content: [{ type: 'text', text: `ran ${sql} on ${database}` }] }),
    );
    weatherTools.add(
      server.registerTool('get_weather', { description: weatherDescription, inputSchema: { city: z.string() } }, ({ city }) => ({
        content: [{ type: 'text', text: `sunny in ${city}` }],
      })),
    );
    server.registerTool(
      'long_task',
      { description: 'A task that reports progress', inputSchema: { steps: z.number() } },
      async ({ steps }, extra) => {
        const token = extra._meta?.progressToken;
        for (let i = 1; i <= steps; i++) {
          if (token !== undefined) {
            await extra.sendNotification({
              method: 'notifications/progress',
              params: { progressToken: token, progress: i, total: steps, message: `step ${i} for ${CUSTOMER_EMAIL}` },
            });
          }
          await extra.sendNotification({
            method: 'notifications/message',
            params: { level: 'info', data: `step ${i} done, card ${CUSTOMER_CARD}` },
          });
        }
        return { content: [{ type: 'text', text: `done after ${steps} steps` }] };
      },
    );
    server.registerTool('echo_auth', { description: 'Echo the Authorization header received' }, (extra) => ({
      content: [{ type: 'text', text: `auth=${String(extra.requestInfo?.headers?.authorization ?? '(none)')}` }],
    }));
    server.registerTool('held_echo', { description: 'Echo text', inputSchema: { text: z.string() } }, ({ text }) => ({
      content: [{ type: 'text', text: `echo ${text}` }],
    }));
    return server;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    let body: unknown;
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    received.push({ method: req.method ?? '', headers: { ...req.headers }, body });
    if (opts.acceptVersion !== undefined && req.headers['mcp-protocol-version'] === opts.acceptVersion) {
      delete req.headers['mcp-protocol-version'];
      const raw = req.rawHeaders;
      for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i].toLowerCase() === 'mcp-protocol-version') raw.splice(i, 2);
    }
    if (opts.stateless) {
      const server = newServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: opts.json === true });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
      return;
    }
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? transports.get(sid) : undefined;
    if (!transport) {
      if (typeof sid === 'string' || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
        return;
      }
      const server = newServer();
      const t = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: opts.json === true,
        onsessioninitialized: (id) => {
          transports.set(id, t);
        },
      });
      t.onclose = () => {
        if (t.sessionId) transports.delete(t.sessionId);
      };
      await server.connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res, body);
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
    port,
    received,
    deleted,
    methods() {
      const out: string[] = [];
      for (const r of received) {
        const msgs = Array.isArray(r.body) ? (r.body as unknown[]) : r.body === undefined ? [] : [r.body];
        for (const m of msgs) {
          const o = m as { method?: string; params?: { name?: string } };
          if (typeof o?.method !== 'string') continue;
          out.push(o.method === 'tools/call' ? `tools/call:${String(o.params?.name)}` : o.method);
        }
      }
      return out;
    },
    changeWeatherTool(description) {
      weatherDescription = description;
      for (const t of weatherTools) t.update({ description });
    },
    async close() {
      for (const t of transports.values()) await t.close().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
