// A raw PostgreSQL wire client for end-to-end tests: sends hand-built frames (any order, any
// pipelining) and reads the server's messages back. Independent of the sidecar's codec.
import * as net from 'node:net';
import { cstr, int16, int32, msg, startupPacket } from './sidecar/pg-bytes';

export interface BackendMessage {
  code: string;
  body: Buffer;
}

/** Frames built by hand (text-format parameters only). */
export const fe = {
  parse: (name: string, sql: string): Buffer => msg('P', cstr(name), cstr(sql), int16(0)),
  bind: (portal: string, statement: string, params: Array<string | null> = []): Buffer =>
    msg(
      'B',
      cstr(portal),
      cstr(statement),
      int16(0),
      int16(params.length),
      ...params.map((p) => (p === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(p)), Buffer.from(p)]))),
      int16(0),
    ),
  describe: (kind: 'S' | 'P', name: string): Buffer => msg('D', Buffer.from(kind), cstr(name)),
  execute: (portal = ''): Buffer => msg('E', cstr(portal), int32(0)),
  close: (kind: 'S' | 'P', name: string): Buffer => msg('C', Buffer.from(kind), cstr(name)),
  sync: (): Buffer => msg('S'),
  flush: (): Buffer => msg('H'),
  query: (sql: string): Buffer => msg('Q', cstr(sql)),
};

/** Moves every complete backend message at the start of `buf` into `out`; returns the bytes left over. */
export function readBackendMessages(buf: Buffer, out: BackendMessage[]): Buffer {
  while (buf.length >= 5) {
    const len = buf.readInt32BE(1);
    if (buf.length < len + 1) break;
    out.push({ code: String.fromCharCode(buf[0]), body: buf.subarray(5, len + 1) });
    buf = buf.subarray(len + 1);
  }
  return buf;
}

/** A protocol 3.0 StartupMessage for `user` and `database`. */
export function startupMessage(user: string, database: string): Buffer {
  return startupPacket(Buffer.concat([int32(196608), cstr('user'), cstr(user), cstr('database'), cstr(database), cstr('')]));
}

export class WireClient {
  private buf: Buffer = Buffer.alloc(0);
  /** Messages received since the last `take`. */
  private messages: BackendMessage[] = [];

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf = readBackendMessages(Buffer.concat([this.buf, d]), this.messages);
    });
    sock.on('error', () => undefined);
  }

  static async connect(url: string): Promise<WireClient> {
    const u = new URL(url);
    const sock = net.connect(Number(u.port), u.hostname);
    await new Promise((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    const c = new WireClient(sock);
    sock.write(startupMessage(decodeURIComponent(u.username), u.pathname.slice(1)));
    await c.untilReady(1);
    c.take();
    return c;
  }

  send(...frames: Buffer[]): void {
    this.sock.write(Buffer.concat(frames));
  }

  /** Waits until `n` ReadyForQuery messages arrived since the last `take`, then returns everything received. */
  async untilReady(n: number, timeoutMs = 8000): Promise<BackendMessage[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.filter((m) => m.code === 'Z').length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} ReadyForQuery, got: ${describe(this.messages)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.take();
  }

  take(): BackendMessage[] {
    const m = this.messages;
    this.messages = [];
    return m;
  }

  /** Sends, waits for `syncs` ReadyForQuery, returns what came back. */
  async run(syncs: number, ...frames: Buffer[]): Promise<BackendMessage[]> {
    this.send(...frames);
    return this.untilReady(syncs);
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * Runs each statement as a simple Query on one new connection to `url`; returns what came back for
 * each as text (`code:body|...`, bodies as latin1 so every byte can be searched).
 */
export async function queryTexts(url: string, ...sql: string[]): Promise<string[]> {
  const w = await WireClient.connect(url);
  const out: string[] = [];
  for (const s of sql) {
    w.send(fe.query(s));
    out.push((await w.untilReady(1)).map((m) => `${m.code}:${m.body.toString('latin1')}`).join('|'));
  }
  w.send(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
  return out;
}

/** The SQLSTATE codes of the ErrorResponses among `ms`, in order. */
export function errorCodes(ms: BackendMessage[]): string[] {
  return ms.filter((m) => m.code === 'E').map((m) => field(m, 'C') ?? '?');
}

/** Fields of an ErrorResponse/NoticeResponse body, by field code. */
export function errorFields(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]);
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    out[code] ??= body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return out;
}

/** A field of an ErrorResponse/NoticeResponse. */
export function field(m: BackendMessage, type: string): string | undefined {
  return errorFields(m.body)[type];
}

/** The text values of the first column of every DataRow. */
export function firstColumn(ms: BackendMessage[]): Array<string | null> {
  return ms
    .filter((m) => m.code === 'D')
    .map((m) => {
      const len = m.body.readInt32BE(2);
      return len < 0 ? null : m.body.toString('utf8', 6, 6 + len);
    });
}

function describe(ms: BackendMessage[]): string {
  return ms.map((m) => (m.code === 'E' ? `E(${field(m, 'C')} ${field(m, 'M')})` : m.code)).join(' ');
}
