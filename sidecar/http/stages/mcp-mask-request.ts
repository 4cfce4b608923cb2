// Request-direction masking on an MCP route (issue 13, decision 7): what the agent sends the MCP
// server — tools/call and prompts/get arguments, completion values, its answers to the server's
// sampling and elicitation requests — goes through the target's request maskers
// (sidecar/mcp/mask-messages.ts maskClientMessage) before it leaves, after the messages were
// judged as the agent sent them. When masking changed something, the body sent is the
// re-serialisation of the strict parse that was judged, with the masked values in it; a held call
// shows and binds its arguments as they will be sent. A message the maskers cannot vouch for is
// refused (422), never sent unmasked.
import { maskClientMessage, maskingIsNoop, McpUnmaskableError } from '../../mcp/mask-messages';
import { readStrictJson } from '../../mcp/strict-json';
import { HttpError } from '../errors';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const mcpMaskRequestStage: Stage<RouteExchange> = {
  name: 'mcp-mask-request',
  run(ex) {
    const mcp = ex.mcp!;
    const plan = ex.plan!.requestPlan;
    const raw = ex.bufferedBody;
    if (!plan || !raw || mcp.verdicts.length === 0) return;
    // Only what may be sent: every message allowed, or the one held call.
    if (!mcp.verdicts.every((v) => v.decision?.action === 'allow' || v.decision?.action === 'hold')) return;
    if (maskingIsNoop(raw, plan)) return;
    const parsed = readStrictJson(raw);
    // mcp-read.ts refused what does not read strictly; the same bytes read the same way again.
    if (!parsed.ok) throw new HttpError(400, 'parse_error', `MCP request refused: ${parsed.message}`, { code: -32700 });
    const elements = mcp.batch ? (parsed.value as unknown[]) : [parsed.value];
    let count = 0;
    let changed = false;
    const sent = elements.map((el) => {
      let r;
      try {
        r = maskClientMessage(el, plan);
      } catch (err) {
        if (err instanceof McpUnmaskableError) {
          throw new HttpError(
            422,
            'unmaskable_request',
            `${err.message}; the policy masks what is sent to this MCP server, so it is not sent`,
          );
        }
        throw err;
      }
      count += r.count;
      if (r.message !== el) changed = true;
      return r.message;
    });
    if (!changed) return;
    mcp.sent = sent;
    ex.bufferedBody = Buffer.from(JSON.stringify(mcp.batch ? sent : sent[0]), 'utf8');
    ex.masked += count;
    ex.maskedInRequest += count;
    ex.countMasked(['json'], count);
  },
};
