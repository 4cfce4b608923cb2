// The demo's MCP step: the scripted agent, an official SDK client, reaches the sample MCP server
// (demo-mcp-server.ts) through the sidecar's crm-tools target (examples/mcp-policy.yaml): it lists
// the tools (the destructive one is hidden), searches customers (PII masked), tries the hidden
// delete anyway (a tool error naming the rule; the server never sees it), and runs a query on prod
// (held until the demo's approver runs `warden approve`, then run once).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { DemoMcp } from './demo-mcp-server';

interface Io {
  stdout(s: string): void;
}

export interface McpDemoContext {
  io: Io;
  /** The agent's MCP endpoint: `http://127.0.0.1:<egress>/crm-tools`. */
  endpoint: string;
  server: DemoMcp;
  /** The token the sidecar holds for the server (crm-tools/token). */
  token: string;
  /** The number of the first step printed. */
  first: number;
  tally: Record<string, number>;
  /** Decides the approval request a held call opens, as the demo's approver (`warden approve|deny`). */
  decideHeld(decide: { verdict: 'approve' | 'deny'; reason: string; showList?: boolean }, running: Promise<unknown>): Promise<void>;
}

type CallResult = { content?: Array<{ type: string; text?: string }>; isError?: boolean };

function text(r: CallResult): string {
  return (r.content ?? [])
    .map((c) => c.text ?? `[${c.type}]`)
    .join('\n')
    .replace(/\n/g, '\n           ');
}

/** Runs the steps; returns what did not go as the policy says (empty when all did). */
export async function mcpSteps(ctx: McpDemoContext): Promise<string[]> {
  const unexpected: string[] = [];
  const { io, server, tally } = ctx;
  io.stdout(`the agent's MCP client (official SDK) connects to ${ctx.endpoint} with "Bearer warden-managed"\n`);
  const client = new Client({ name: 'demo-agent', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(ctx.endpoint), { requestInit: { headers: { authorization: 'Bearer warden-managed' } } }),
  );
  try {
    let n = ctx.first;
    io.stdout(`${n++}. list the MCP server's tools (filtered for this caller)\n   agent> tools/list`);
    const names = (await client.listTools()).tools.map((t) => t.name);
    const hidden = !names.includes('delete_customer');
    if (!hidden || !names.includes('search_customers')) unexpected.push('tools/list was not filtered as the policy says');
    tally.allowed++;
    io.stdout(
      `   ALLOWED  the agent sees: ${names.join(', ')}${hidden ? ' (delete_customer hidden by rule "no-deletes")' : ' (delete_customer NOT hidden: UNEXPECTED)'}\n`,
    );

    io.stdout(`${n++}. search customers through MCP (tool result masked)\n   agent> tools/call search_customers {"query":"a"}`);
    const found = (await client.callTool({ name: 'search_customers', arguments: { query: 'a' } })) as CallResult;
    const shown = text(found);
    const masked = shown.includes('[REDACTED') && !/ada@example\.com|123-45-6789|4111 1111 1111 1111/.test(JSON.stringify(found));
    tally[masked ? 'masked' : 'allowed']++;
    if (!masked) unexpected.push('the personal data in the tool result was not masked');
    io.stdout(`   ${masked ? 'MASKED ' : 'ALLOWED'}  ${shown}\n`);

    io.stdout(`${n++}. call the hidden delete tool anyway\n   agent> tools/call delete_customer {"id":3}`);
    const deleted = (await client.callTool({ name: 'delete_customer', arguments: { id: 3 } })) as CallResult;
    const reached = server.calls.some((c) => c.startsWith('delete_customer'));
    if (!deleted.isError || reached) unexpected.push('the hidden delete tool was not refused before the server');
    if (deleted.isError && !reached) tally.denied++;
    io.stdout(`   ${deleted.isError ? 'DENIED' : 'ALLOWED'}  tool error: ${text(deleted)}`);
    io.stdout(`   the MCP server ${reached ? 'RECEIVED the call: UNEXPECTED' : 'never received it'}\n`);

    io.stdout(
      `${n++}. run a query on the prod database (held; the approver approves)\n   agent> tools/call run_query {"database":"prod","sql":"DELETE FROM orders WHERE total < 20"}`,
    );
    const running = client.callTool({ name: 'run_query', arguments: { database: 'prod', sql: 'DELETE FROM orders WHERE total < 20' } });
    await ctx.decideHeld({ verdict: 'approve', reason: 'cleanup of test orders, ticket OPS-1235', showList: true }, running);
    const ran = (await running) as CallResult;
    const runs = server.calls.filter((c) => c.startsWith('run_query')).length;
    tally.held++;
    if (ran.isError || runs !== 1) unexpected.push('the approved call did not run exactly once');
    io.stdout(
      `   ${ran.isError ? 'HELD -> DENIED' : 'HELD -> APPROVED, ran'}  ${text(ran)} (the server ran it ${runs} time${runs === 1 ? '' : 's'})`,
    );
    const credential = server.seenAuthorization.length > 0 && server.seenAuthorization.every((a) => a === `Bearer ${ctx.token}`);
    if (!credential) unexpected.push("the MCP server did not get the sidecar's credential on every request");
    io.stdout(
      `   the MCP server received the sidecar's credential on every request (${credential ? 'Bearer mcp-demo-…, never the placeholder' : 'UNEXPECTED'})\n`,
    );
  } finally {
    await client.close().catch(() => undefined);
  }
  return unexpected;
}
