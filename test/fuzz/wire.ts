// The fuzzer's client: hand-built frontend frames (independent of the sidecar's codec) on a raw
// socket, every byte the server side sends kept for the leak oracle.
import * as net from 'node:net';
import { byte, cstr, int16, int32, msg } from '../support/sidecar/pg-bytes';
import { errorFields, readBackendMessages, startupMessage, type BackendMessage } from '../support/wire-client';

/** One frontend message, as data: programs are printed and shrunk in this form. */
export type Msg =
  | { k: 'Query'; sql: string }
  | { k: 'Parse'; name: string; sql: string; types?: number[] }
  | { k: 'Bind'; portal: string; stmt: string; params: Array<string | null>; binary?: boolean }
  | { k: 'Describe'; what: 'S' | 'P'; name: string }
  | { k: 'Execute'; portal: string; maxRows?: number }
  | { k: 'Close'; what: 'S' | 'P'; name: string }
  | { k: 'Sync' }
  | { k: 'Flush' }
  | { k: 'CopyData'; data: string }
  | { k: 'CopyDone' }
  | { k: 'CopyFail'; reason: string };

export function encode(m: Msg): Buffer {
  switch (m.k) {
    case 'Query':
      return msg('Q', cstr(m.sql));
    case 'Parse': {
      const types = m.types ?? [];
      return msg('P', cstr(m.name), cstr(m.sql), int16(types.length), ...types.map((t) => int32(t)));
    }
    case 'Bind': {
      const params = m.params.flatMap((p) => (p === null ? [int32(-1)] : [int32(Buffer.byteLength(p)), Buffer.from(p, 'utf8')]));
      const results = m.binary ? [int16(1), int16(1)] : [int16(0)];
      return msg('B', cstr(m.portal), cstr(m.stmt), int16(0), int16(m.params.length), ...params, ...results);
    }
    case 'Describe':
      return msg('D', byte(m.what), cstr(m.name));
    case 'Execute':
      return msg('E', cstr(m.portal), int32(m.maxRows ?? 0));
    case 'Close':
      return msg('C', byte(m.what), cstr(m.name));
    case 'Sync':
      return msg('S');
    case 'Flush':
      return msg('H');
    case 'CopyData':
      return msg('d', Buffer.from(m.data, 'utf8'));
    case 'CopyDone':
      return msg('c');
    case 'CopyFail':
      return msg('f', cstr(m.reason));
  }
}

/** A protocol-level client of the sidecar: no library between the fuzzer and the wire. */
export class WireClient {
  private buf: Buffer = Buffer.alloc(0);
  readonly messages: BackendMessage[] = [];
  /** Every byte received, for the leak oracle. */
  readonly received: Buffer[] = [];
  /** Every byte sent: the agent's own text echoed back is not a leak. */
  readonly sent: Buffer[] = [];
  closed = false;
  /** When the last bytes arrived (ms since the epoch). */
  lastDataAt = Date.now();
  private waiters = new Set<() => void>();

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.received.push(d);
      this.lastDataAt = Date.now();
      this.buf = readBackendMessages(Buffer.concat([this.buf, d]), this.messages);
      this.wake();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  static async connect(port: number, database: string, user = 'agent', timeoutMs = 5000): Promise<WireClient> {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const c = new WireClient(sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    c.write(startupMessage(user, database));
    const ok = await c.until((m) => m.some((x) => x.code === 'Z' || x.code === 'E'), timeoutMs);
    if (!ok || !c.messages.some((x) => x.code === 'Z')) {
      const err = c.messages.find((x) => x.code === 'E');
      c.destroy();
      throw new Error(`cannot connect through the sidecar: ${err ? errorFields(err.body).M : c.closed ? 'closed' : 'timeout'}`);
    }
    return c;
  }

  write(b: Buffer): void {
    this.sent.push(b);
    if (!this.closed) this.sock.write(b);
  }

  send(msgs: Msg[]): void {
    this.write(Buffer.concat(msgs.map(encode)));
  }

  /** Resolves true once `pred` holds over the messages so far, false on close or timeout. */
  until(pred: (m: BackendMessage[]) => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (pred(this.messages)) return done(true);
        if (this.closed) return done(false);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      // also re-checked on a clock, for predicates about quiet time
      const tick = setInterval(check, 20);
      const done = (v: boolean): void => {
        clearTimeout(timer);
        clearInterval(tick);
        this.waiters.delete(check);
        resolve(v);
      };
      this.waiters.add(check);
      check();
    });
  }

  destroy(): void {
    this.sock.destroy();
  }

  async end(): Promise<void> {
    if (this.closed) return;
    this.sock.end(msg('X'));
    await this.until(() => false, 200);
    this.sock.destroy();
  }
}
