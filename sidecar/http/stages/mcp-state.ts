// What the MCP stages keep on the exchange (RouteExchange.mcp), one object per MCP request.
import type { Answer, Verdict } from '../../mcp/answer';
import type { JsonRpcId } from '../../mcp/messages';
import type { HeldStream } from './mcp-stream';

export interface McpPinChange {
  tool: string;
  expected: string;
  actual: string;
}

export class McpExchange {
  /** The body was a JSON array (a batch). */
  batch = false;
  /** One per message of the body (POST); empty for GET and DELETE. */
  verdicts: Verdict[] = [];
  /** The method of each request sent, by idKey(id): what a response answers (for its hooks). */
  readonly requestMethods = new Map<string, string>();
  /**
   * A single held tools/call. A hold stage (stages/mcp-hold.ts) resolves it: its verdict's
   * decision becomes allow or deny; left held, it is answered as not approved.
   */
  held: Verdict | undefined = undefined;
  /** What happens to the body: forwarded, or answered by the sidecar (set by mcp-answer.ts). */
  answer: Answer | undefined = undefined;
  /** Tools hidden from a listing, or calls refused, because the definition changed (for the audit record). */
  readonly pinChanges: McpPinChange[] = [];
  /** The id of a single request, for error answers; null otherwise. */
  id: JsonRpcId | null = null;

  // --- masking, holds, audit (mcp-mask-request.ts, mcp-hold.ts, mcp-mask-hooks.ts, mcp-audit.ts)
  /** The messages as sent, when request masking changed any (else the body went as it came). */
  sent: unknown[] | undefined = undefined;
  /** The tools/call that waited for an approver; its verdict is now allow (approved) or still hold (not approved). */
  heldVerdict: Verdict | undefined = undefined;
  /** The held call's event stream, open since the hold began: its answer is written there. */
  stream: HeldStream | undefined = undefined;
  /** How each answer ended (error code, tool error), by idKey of the request it answers. */
  readonly outcomes = new Map<string, { errorCode?: number; toolError?: boolean }>();
}
