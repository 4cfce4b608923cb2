// The event stream a held tools/call answers on (issue 13, decision 9). When the agent accepts
// `text/event-stream`, the hold stage opens the response at once (200, an event stream) and
// writes a heartbeat every interval while an approver decides: an MCP progress notification for
// the request's progressToken (the SDK client can reset its request timeout on progress), or an
// SSE comment. What follows — the sidecar's denial, or the server's answer once approved, JSON or
// events, masked like any other — is written into the same stream as `message` events, and a
// refusal after that point as a JSON-RPC error event for the call plus an `error` event.
import type { ServerResponse } from 'node:http';
import { heartbeat, sseMessage } from '../../mcp/heartbeat';

export class HeldStream {
  private timer: NodeJS.Timeout | undefined;
  private beats = 0;

  private constructor(
    readonly res: ServerResponse,
    private readonly token: string | number | undefined,
  ) {}

  /** Opens the stream (headers sent now) and starts the heartbeat. */
  static open(res: ServerResponse, token: string | number | undefined, intervalMs: number): HeldStream {
    const s = new HeldStream(res, token);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    s.timer = setInterval(() => s.beat(), intervalMs);
    s.timer.unref();
    return s;
  }

  private beat(): void {
    if (this.res.writableEnded || this.res.destroyed) return this.stop();
    this.res.write(heartbeat(this.token, ++this.beats, 'this call is waiting for approval'));
  }

  /** Heartbeats sent so far. */
  get heartbeats(): number {
    return this.beats;
  }

  /** Stops the heartbeat (the decision is in). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Writes events (no end). */
  write(text: string): boolean {
    return this.res.write(text);
  }

  /** Ends the stream with the given messages as `message` events; resolves once handed to the socket. */
  end(messages: readonly unknown[], trailer = ''): Promise<void> {
    this.stop();
    let text = '';
    for (const m of messages) text += sseMessage(m);
    text += trailer;
    return new Promise((resolve) => {
      if (this.res.writableEnded || this.res.destroyed) return resolve();
      this.res.end(text, () => resolve());
    });
  }
}

/** The agent accepts an event stream for its POST (the SDK client sends `application/json, text/event-stream`). */
export function acceptsEventStream(accept: string | string[] | undefined): boolean {
  return String(accept ?? '')
    .toLowerCase()
    .split(',')
    .some((t) => t.split(';')[0].trim() === 'text/event-stream');
}
