// What a held tools/call sends while it waits for an approver (issue 13, decision 9), when the
// agent accepts an event stream: an MCP progress notification when the request carries a
// `_meta.progressToken` (the SDK client resets its request timeout on progress when asked to),
// otherwise an SSE comment (keeps proxies and the connection from timing the stream out). Pure.

/** Default interval between heartbeats while a call is held. */
export const HEARTBEAT_INTERVAL_MS = 10_000;

/** The progress token of a request's params (`_meta.progressToken`: a string or an integer), if any. */
export function progressTokenOf(params: Record<string, unknown> | undefined): string | number | undefined {
  const meta = params?._meta;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return undefined;
  const token = (meta as Record<string, unknown>).progressToken;
  if (typeof token === 'string') return token;
  if (typeof token === 'number' && Number.isInteger(token)) return token;
  return undefined;
}

/** One SSE event carrying one JSON-RPC message. */
export function sseMessage(message: unknown): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/**
 * The n-th heartbeat (from 1): a notifications/progress for the token (progress increases with
 * each, no total: it is not known), or a comment line, which clients ignore.
 */
export function heartbeat(token: string | number | undefined, n: number, what: string): string {
  const message = `Agent Warden: ${what}`;
  if (token === undefined) return `: ${message.replace(/[\r\n]/g, ' ')}\n\n`;
  return sseMessage({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token, progress: n, message } });
}
