// Messages a client (the agent, or the sidecar itself upstream) sends: typed decoding of the ones
// the proxy must understand, and encoders for the ones the sidecar originates upstream.
import { ProtocolError } from './errors';
import type { Frame } from './frame-reader';
import { FE, STARTUP } from './codes';
import { BodyReader } from './reader';
import { Writer } from './writer';

export type StartupPacket =
  | { name: 'startup'; major: number; minor: number; params: Record<string, string> }
  | { name: 'sslRequest' }
  | { name: 'gssEncRequest' }
  | { name: 'cancelRequest'; processId: number; secretKey: Buffer };

export function decodeStartup(f: Frame): StartupPacket {
  const r = new BodyReader(f.buf, f.body, f.end);
  const version = r.int32('protocol version');
  if (version === STARTUP.SSLRequest) return { name: 'sslRequest' };
  if (version === STARTUP.GSSENCRequest) return { name: 'gssEncRequest' };
  if (version === STARTUP.CancelRequest) {
    const processId = r.int32('process id');
    return { name: 'cancelRequest', processId, secretKey: Buffer.from(r.rest()) };
  }
  const major = version >>> 16;
  const minor = version & 0xffff;
  if (major !== 3) throw new ProtocolError(`unsupported frontend protocol ${major}.${minor}: only 3.x is served`);
  const params: Record<string, string> = {};
  for (;;) {
    const key = r.cstring('startup parameter name');
    if (key === '') break;
    params[key] = r.cstring(`value of startup parameter "${key}"`);
  }
  r.expectEnd('startup packet');
  return { name: 'startup', major, minor, params };
}

export interface ParseMessage {
  name: 'parse';
  statement: string;
  text: string;
  paramTypes: number[];
}

export interface BindMessage {
  name: 'bind';
  portal: string;
  statement: string;
  paramFormats: number[];
  /** null for SQL NULL. Views into the frame buffer. */
  params: Array<Buffer | null>;
  resultFormats: number[];
}

export type FrontendMessage =
  | { name: 'query'; text: string }
  | ParseMessage
  | BindMessage
  | { name: 'execute'; portal: string; maxRows: number }
  | { name: 'describe'; kind: 'S' | 'P'; target: string }
  | { name: 'close'; kind: 'S' | 'P'; target: string }
  | { name: 'sync' }
  | { name: 'flush' }
  | { name: 'terminate' }
  | { name: 'copyData'; data: Buffer }
  | { name: 'copyDone' }
  | { name: 'copyFail'; message: string }
  | { name: 'functionCall'; oid: number }
  | { name: 'password'; data: Buffer };

export function decodeQuery(f: Frame): string {
  const r = new BodyReader(f.buf, f.body, f.end);
  const text = r.cstring('query text');
  r.expectEnd('Query');
  return text;
}

export function decodeParse(f: Frame): ParseMessage {
  const r = new BodyReader(f.buf, f.body, f.end);
  const statement = r.cstring('statement name');
  const text = r.cstring('query text');
  const n = r.int16('parameter type count');
  if (n < 0) throw new ProtocolError('negative parameter type count in Parse');
  const paramTypes: number[] = [];
  for (let i = 0; i < n; i++) paramTypes.push(r.uint32('parameter type'));
  r.expectEnd('Parse');
  return { name: 'parse', statement, text, paramTypes };
}

function formatList(r: BodyReader, what: string): number[] {
  const n = r.int16(`${what} count`);
  if (n < 0) throw new ProtocolError(`negative ${what} count`);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const f = r.int16(what);
    if (f !== 0 && f !== 1) throw new ProtocolError(`invalid ${what} ${f}`);
    out.push(f);
  }
  return out;
}

export function decodeBind(f: Frame): BindMessage {
  const r = new BodyReader(f.buf, f.body, f.end);
  const portal = r.cstring('portal name');
  const statement = r.cstring('statement name');
  const paramFormats = formatList(r, 'parameter format code');
  const n = r.int16('parameter count');
  if (n < 0) throw new ProtocolError('negative parameter count in Bind');
  const params: Array<Buffer | null> = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32('parameter length');
    params.push(len === -1 ? null : r.bytes(len, 'parameter value'));
  }
  const resultFormats = formatList(r, 'result format code');
  r.expectEnd('Bind');
  return { name: 'bind', portal, statement, paramFormats, params, resultFormats };
}

/** Only the portal name and result formats: what the hot path needs from a Bind. */
export function decodeBindHead(f: Frame): { portal: string; statement: string; resultFormats: number[] } {
  const r = new BodyReader(f.buf, f.body, f.end);
  const portal = r.cstring('portal name');
  const statement = r.cstring('statement name');
  formatList(r, 'parameter format code');
  const n = r.int16('parameter count');
  if (n < 0) throw new ProtocolError('negative parameter count in Bind');
  // Skip the values without materializing them: the hot path never needs them here.
  for (let i = 0; i < n; i++) {
    const len = r.int32('parameter length');
    if (len > 0) r.bytes(len, 'parameter value');
    else if (len < -1) throw new ProtocolError(`invalid parameter length ${len}`);
  }
  const resultFormats = formatList(r, 'result format code');
  r.expectEnd('Bind');
  return { portal, statement, resultFormats };
}

function decodeKindName(f: Frame, what: string): { kind: 'S' | 'P'; target: string } {
  const r = new BodyReader(f.buf, f.body, f.end);
  const k = r.byte(`${what} kind`);
  if (k !== 0x53 && k !== 0x50) throw new ProtocolError(`invalid ${what} kind 0x${k.toString(16)}`);
  const target = r.cstring(`${what} name`);
  r.expectEnd(what);
  return { kind: k === 0x53 ? 'S' : 'P', target };
}

export function decodeExecute(f: Frame): { portal: string; maxRows: number } {
  const r = new BodyReader(f.buf, f.body, f.end);
  const portal = r.cstring('portal name');
  const maxRows = r.int32('row limit');
  r.expectEnd('Execute');
  return { portal, maxRows };
}

function expectEmpty(f: Frame, what: string): void {
  if (f.end !== f.body) throw new ProtocolError(`${what} must have an empty body`);
}

/** Full typed decoding of any frontend message (tests, fuzzing, and the slow paths). */
export function decodeFrontend(f: Frame): FrontendMessage {
  switch (f.code) {
    case FE.Query:
      return { name: 'query', text: decodeQuery(f) };
    case FE.Parse:
      return decodeParse(f);
    case FE.Bind:
      return decodeBind(f);
    case FE.Execute:
      return { name: 'execute', ...decodeExecute(f) };
    case FE.Describe:
      return { name: 'describe', ...decodeKindName(f, 'Describe') };
    case FE.Close:
      return { name: 'close', ...decodeKindName(f, 'Close') };
    case FE.Sync:
      expectEmpty(f, 'Sync');
      return { name: 'sync' };
    case FE.Flush:
      expectEmpty(f, 'Flush');
      return { name: 'flush' };
    case FE.Terminate:
      expectEmpty(f, 'Terminate');
      return { name: 'terminate' };
    case FE.CopyData:
      return { name: 'copyData', data: f.buf.subarray(f.body, f.end) };
    case FE.CopyDone:
      expectEmpty(f, 'CopyDone');
      return { name: 'copyDone' };
    case FE.CopyFail: {
      const r = new BodyReader(f.buf, f.body, f.end);
      return { name: 'copyFail', message: r.cstring('CopyFail message') };
    }
    case FE.FunctionCall: {
      const r = new BodyReader(f.buf, f.body, f.end);
      return { name: 'functionCall', oid: r.uint32('function oid') };
    }
    case FE.Password:
      return { name: 'password', data: f.buf.subarray(f.body, f.end) };
    default:
      throw new ProtocolError(`unknown frontend message type 0x${f.code.toString(16)}`);
  }
}

export function decodeDescribe(f: Frame): { kind: 'S' | 'P'; target: string } {
  return decodeKindName(f, 'Describe');
}

export function decodeClose(f: Frame): { kind: 'S' | 'P'; target: string } {
  return decodeKindName(f, 'Close');
}

// ---- encoders for what the sidecar sends upstream ----

export function encodeStartup(params: Record<string, string>): Buffer {
  const w = new Writer().int32(STARTUP.Protocol30);
  for (const [k, v] of Object.entries(params)) w.cstring(k).cstring(v);
  return w.int8(0).flushStartup();
}

export function encodeSslRequest(): Buffer {
  return new Writer(16).int32(STARTUP.SSLRequest).flushStartup();
}

export function encodeCancelRequest(processId: number, secretKey: Buffer): Buffer {
  return new Writer(32).int32(STARTUP.CancelRequest).int32(processId).bytes(secretKey).flushStartup();
}

export function encodeQuery(text: string): Buffer {
  return new Writer(text.length + 16).cstring(text).flush(FE.Query);
}

export function encodeParse(statement: string, text: string, paramTypes: number[] = []): Buffer {
  const w = new Writer(text.length + 32).cstring(statement).cstring(text).int16(paramTypes.length);
  for (const t of paramTypes) w.int32(t | 0);
  return w.flush(FE.Parse);
}

export function encodeCopyFail(message: string): Buffer {
  return new Writer(message.length + 16).cstring(message).flush(FE.CopyFail);
}

export function encodeDescribe(kind: 'S' | 'P', target: string): Buffer {
  return new Writer(32).int8(kind.charCodeAt(0)).cstring(target).flush(FE.Describe);
}

export function encodeSync(): Buffer {
  return new Writer(8).flush(FE.Sync);
}

export function encodeTerminate(): Buffer {
  return new Writer(8).flush(FE.Terminate);
}

export function encodePassword(password: string): Buffer {
  return new Writer(password.length + 16).cstring(password).flush(FE.Password);
}

export function encodeSaslInitial(mechanism: string, data: Buffer): Buffer {
  return new Writer(data.length + 64).cstring(mechanism).int32(data.length).bytes(data).flush(FE.Password);
}

export function encodeSaslResponse(data: Buffer): Buffer {
  return new Writer(data.length + 16).bytes(data).flush(FE.Password);
}
