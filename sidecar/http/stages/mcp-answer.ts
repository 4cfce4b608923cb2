// Forward or answer (decisions 4 and 5 of issue 13; the plan is sidecar/mcp/answer.ts): when
// every message is allowed the forwarding stages run; otherwise nothing reaches the server and
// the sidecar answers, HTTP 200 with JSON-RPC (or 202 with nothing for refused notifications), as
// application/json, or as one SSE event when the agent accepts only an event stream.
import { planAnswer } from '../../mcp/answer';
import type { RouteExchange } from './exchange';
import { runStages, type Stage } from './stage';

/** The stages that send the request upstream and relay the answer (route-proxy.ts MCP_FORWARD_STAGES). */
export function mcpAnswerStage(forward: readonly Stage<RouteExchange>[]): Stage<RouteExchange> {
  return {
    name: 'mcp-answer',
    run(ex) {
      const mcp = ex.mcp!;
      if (mcp.held) {
        // Nothing resolved the hold (no hold stage, or it left it): not approved, so not sent.
        mcp.held.decision = { ...mcp.held.decision!, reason: `${mcp.held.decision!.reason} (approval of MCP calls is not available)` };
        mcp.held = undefined;
      }
      const answer = planAnswer(mcp.verdicts, mcp.batch);
      mcp.answer = answer;
      if (answer.forward) return runStages(forward, ex);
      return sendAnswer(ex, answer.status, answer.body);
    },
  };
}

/** Writes a JSON-RPC answer the sidecar composed (or an empty 202). */
export function sendAnswer(ex: RouteExchange, status: number, body: unknown): Promise<void> {
  const { res } = ex;
  // A held call's event stream is open already (mcp-hold.ts): the answer goes there.
  const stream = ex.mcp?.stream;
  if (stream) return stream.end(body === undefined ? [] : Array.isArray(body) ? body : [body]);
  return new Promise((resolve) => {
    if (body === undefined) {
      res.writeHead(status, { 'content-length': '0' });
      res.end(() => resolve());
      return;
    }
    const json = JSON.stringify(body);
    if (acceptsOnlyEventStream(ex.req.headers['accept'])) {
      const text = `event: message\ndata: ${json}\n\n`;
      res.writeHead(status, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        'content-length': String(Buffer.byteLength(text)),
      });
      res.end(text, () => resolve());
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) });
    res.end(json, () => resolve());
  });
}

/** The agent's Accept names text/event-stream and no JSON type. */
function acceptsOnlyEventStream(accept: string | string[] | undefined): boolean {
  const types = String(accept ?? '')
    .toLowerCase()
    .split(',')
    .map((t) => t.split(';')[0].trim());
  return types.includes('text/event-stream') && !types.some((t) => t === 'application/json' || t === 'application/*' || t === '*/*');
}
