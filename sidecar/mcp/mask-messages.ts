// Masking of MCP JSON-RPC messages, both ways (issue 13, decision 7). Pure: a parsed message and
// the target's masking plan in, the masked message and a count out; the very same object comes
// back when nothing changed (the caller then forwards the bytes as they came).
//
//   server → agent   maskServerMessage(msg, plan): every string (and number, and object key) of
//                    the message's payload — `result`, `error`, `params` of server notifications
//                    and requests (content[].text, structuredContent, embedded resources,
//                    resources/read contents, logging and progress messages, sampling and
//                    elicitation requests) — goes through the response maskers.
//   agent → server   maskClientMessage(msg, plan): every params value of the agent's requests
//                    (arguments of tools/call and prompts/get from their own root, completion
//                    values, `_meta`, clientInfo, keys of made-up methods), the agent's answers to
//                    server requests and notification payloads go through the request maskers,
//                    except what is judged and routed on: params `name`, `uri`, `cursor`,
//                    `protocolVersion` and `_meta.progressToken`.
//
// `jsonrpc`, `id` and `method` are never rewritten (they route the message): a server message
// whose id or method holds a value the policy masks is refused instead. Nothing else is exempt:
// cursors, tokens and request ids in server payloads are masked like any value, so pagination
// fails closed rather than carrying PII out.
//
// jsonPaths of a masking rule are evaluated from each payload (`$.content[0].text` on a result)
// and again from each document a tool returns: `structuredContent`, and every `text` that is a
// JSON object or array (tools usually serialise their structured output as text too): such a
// text is parsed, masked as a document (jsonPaths from its own root, then the detectors on every
// decoded string, so `jane\u0040x.io` is found) and re-serialised when it changed or repeated a
// key. A `blob` (base64) that decodes to UTF-8 is masked as such a text and re-encoded.
//
// Fails closed: a message that is not an object, nests deeper than MAX_JSON_DEPTH, or whose
// JSON text nests too deep throws McpUnmaskableError; the caller refuses the message.
import { isUtf8 } from 'node:buffer';
import { mightMatchUtf8 } from '../../common/masking/detectors';
import type { TextMasker } from '../../common/masking/masker';
import { maskJsonDocument, maskNumberText, renameKeys } from '../../common/masking/stream/json';
import { findDuplicateKey } from '../../common/masking/stream/json-duplicates';
import {
  jsonTooDeep,
  JsonTooDeepError,
  MAX_JSON_DEPTH,
  selectedIn,
  startStates,
  stepStates,
  type PathStates,
} from '../../common/policy/jsonpath';
import type { JsonPathSegment } from '../../common/policy/syntax';

/** One masking rule as the target applies it (the shape of the HTTP routes' MaskPlan). */
export interface McpMasker {
  rule: string;
  masker: TextMasker;
  jsonPaths: readonly (readonly JsonPathSegment[])[];
}

export interface McpMaskPlan {
  maskers: readonly McpMasker[];
}

export interface MaskedMessage {
  /** The masked message; the very same object when nothing changed. */
  message: unknown;
  /** Values masked. */
  count: number;
}

/** A message the maskers cannot vouch for: refused, never passed unmasked. */
export class McpUnmaskableError extends Error {
  readonly code = 'EMCP_UNMASKABLE';
  constructor(message: string) {
    super(message);
    this.name = 'McpUnmaskableError';
  }
}

const ENVELOPE = new Set(['jsonrpc', 'id', 'method']);
/**
 * params keys of the agent's requests that are judged or routed on (the tool or prompt name, the
 * resource URI, the list cursor, the protocol version), never rewritten; everything else the agent
 * sends goes through the request maskers.
 */
const ROUTED = new Set(['name', 'uri', 'cursor', 'protocolVersion']);
/** Strings that may hold a whole document (a tool's JSON output as text, a resource's contents). */
const TEXT_KEY = 'text';
const BLOB_KEY = 'blob';
/** A tool's structured output: jsonPaths also apply from its root. */
const STRUCTURED_KEY = 'structuredContent';
const BACKSLASH = 0x5c;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const UNCHANGED_NONE = (message: unknown): MaskedMessage => ({ message, count: 0 });

/**
 * A message from the MCP server (a response, a notification or a request) through the response
 * maskers. `raw`, the message's own bytes when the caller has them, lets a byte scan skip the walk
 * when no masker can match anything in them.
 */
export function maskServerMessage(message: unknown, plan: McpMaskPlan | null | undefined, raw?: Buffer): MaskedMessage {
  if (!plan || plan.maskers.length === 0) return UNCHANGED_NONE(message);
  const msg = asMessage(message);
  if (raw !== undefined && maskingIsNoop(raw, plan)) return UNCHANGED_NONE(message);
  refuseSensitiveEnvelope(msg, plan);
  let out: Record<string, unknown> | null = null;
  let count = 0;
  for (const key of Object.keys(msg)) {
    if (ENVELOPE.has(key)) continue;
    const r = maskPayload(msg[key], plan, undefined);
    count += r.count;
    if (r.message !== msg[key]) (out ??= copyOf(msg))[key] = r.message;
  }
  return { message: out ?? message, count };
}

/**
 * A message's id and method route it (a response to its request, a request to its handler): they
 * cannot be rewritten, so one in which a detector finds something is refused.
 */
function refuseSensitiveEnvelope(msg: Record<string, unknown>, plan: McpMaskPlan): void {
  for (const key of ['id', 'method']) {
    const v = msg[key];
    const text = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
    if (text === undefined) continue;
    for (const m of plan.maskers) {
      if (m.masker.mask(text).count > 0) throw new McpUnmaskableError(`an MCP message's ${key} holds a value the policy masks`);
    }
  }
}

/**
 * A message from the agent through the request maskers: arguments of tools/call and prompts/get
 * (jsonPaths from the arguments object, as `match.mcp.arguments`), completion/complete's argument
 * and context, every other params value but the ROUTED keys, the payload of a notification, and
 * the result or error of the agent's answer to a server request.
 */
export function maskClientMessage(message: unknown, plan: McpMaskPlan | null | undefined, raw?: Buffer): MaskedMessage {
  if (!plan || plan.maskers.length === 0) return UNCHANGED_NONE(message);
  const msg = asMessage(message);
  if (raw !== undefined && maskingIsNoop(raw, plan)) return UNCHANGED_NONE(message);
  const method = msg.method;
  if (method === undefined) return maskServerMessage(msg, plan); // a response: result/error, as a payload
  if (typeof method !== 'string') throw new McpUnmaskableError('MCP message has a method that is not a string');
  if (msg.id === undefined) return maskServerMessage(msg, plan); // a notification: its params, plumbing kept
  const params = msg.params;
  if (params === null || typeof params !== 'object' || Array.isArray(params)) return UNCHANGED_NONE(message);
  const fields = CLIENT_FIELDS[method] ?? [];
  const p = params as Record<string, unknown>;
  let outParams: Record<string, unknown> | null = null;
  let count = 0;
  // The agent's data fields, each from its own root (jsonPaths as `match.mcp.arguments` reads them).
  for (const field of fields) {
    if (!(field in p)) continue;
    const r = maskPayload(p[field], plan, undefined);
    count += r.count;
    if (r.message !== p[field]) (outParams ??= copyOf(p))[field] = r.message;
  }
  // Everything else but what is routed on (`_meta`, made-up keys and methods, clientInfo).
  const skip = new Set([...ROUTED, ...fields]);
  const rest = maskPayload(outParams ?? p, plan, skip);
  count += rest.count;
  const finalParams = rest.message as Record<string, unknown>;
  if (finalParams === p) return { message, count };
  return { message: { ...msg, params: finalParams }, count };
}

/** The params fields of agent requests that carry the agent's data (each masked from its own root). */
const CLIENT_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'tools/call': ['arguments'],
  'prompts/get': ['arguments'],
  'completion/complete': ['argument', 'context'],
};

function asMessage(message: unknown): Record<string, unknown> {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    throw new McpUnmaskableError('MCP message is not a JSON object, so it cannot be masked');
  }
  if (jsonTooDeep(message, MAX_JSON_DEPTH)) throw new McpUnmaskableError(`MCP message is ${new JsonTooDeepError().message}`);
  return message as Record<string, unknown>;
}

/**
 * No masker can change a message whose bytes hold no backslash (no escape hides a character), no
 * blob (base64 hides everything), no jsonPath to apply and nothing a detector's pre-check fires on
 * (the argument of sidecar/http/stages/body-scan.ts, which the HTTP path uses the same way).
 */
export function maskingIsNoop(raw: Buffer, plan: McpMaskPlan): boolean {
  if (raw.indexOf(BACKSLASH) !== -1 || raw.indexOf('"blob"') !== -1) return false;
  for (const m of plan.maskers) {
    if (m.jsonPaths.length > 0) return false;
    if (mightMatchUtf8(raw, m.masker.compiled)) return false;
  }
  return true;
}

function copyOf(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // defineProperty: a `__proto__` key stays a key (JSON.parse makes it one), not the prototype.
  for (const k of Object.keys(obj)) Object.defineProperty(out, k, { value: obj[k], enumerable: true, writable: true, configurable: true });
  return out;
}

/** One payload (result, error, params, arguments) through every masker in turn; `keep`: its top-level keys left as they are. */
function maskPayload(payload: unknown, plan: McpMaskPlan, keep: ReadonlySet<string> | undefined): MaskedMessage {
  let doc = payload;
  let count = 0;
  for (const m of plan.maskers) {
    const w: Walk = { m, count: 0 };
    doc = walk(doc, startStates(m.jsonPaths), w, { selected: false, depth: 1, key: undefined, keep });
    count += w.count;
  }
  return { message: doc, count };
}

interface Walk {
  m: McpMasker;
  count: number;
}

interface At {
  /** An enclosing value was selected by a jsonPath: everything below is masked whole. */
  selected: boolean;
  depth: number;
  /** The key this node is the value of (undefined for array elements and the payload itself). */
  key: string | undefined;
  /** Keys of this node left as they are (the routed params of an agent request); undefined below the top. */
  keep: ReadonlySet<string> | undefined;
  /** A `blob`'s sibling `mimeType`, when the node is a blob. */
  mime?: string;
}

function walk(node: unknown, states: PathStates, w: Walk, at: At): unknown {
  const paths = w.m.jsonPaths;
  const selected = at.selected || selectedIn(states, paths);
  if (node === null || node === undefined || typeof node === 'boolean') {
    return selected && typeof node === 'boolean' ? whole(String(node), w) : node;
  }
  if (typeof node === 'string') {
    if (selected) return whole(node, w);
    if (at.key === TEXT_KEY || at.key === BLOB_KEY) {
      const doc = at.key === TEXT_KEY ? maskJsonText(node, w) : maskBlob(node, w, at.mime);
      if (doc !== undefined) return doc;
    }
    const r = w.m.masker.mask(node);
    w.count += r.count;
    return r.text;
  }
  if (typeof node === 'number' || typeof node === 'bigint') {
    if (selected) return whole(String(node), w);
    const r = maskNumberText(node, w.m.masker);
    if (r === undefined) return node;
    w.count += r.count;
    return r.text;
  }
  if (typeof node !== 'object') return node;
  if (at.depth > MAX_JSON_DEPTH) throw new McpUnmaskableError(`MCP message is ${new JsonTooDeepError().message}`);
  if (Array.isArray(node)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < node.length; i++) {
      const v = walk(node[i], stepStates(states, paths, i), w, { selected, depth: at.depth + 1, key: undefined, keep: undefined });
      if (v !== node[i]) (copy ??= node.slice())[i] = v;
    }
    return copy ?? node;
  }
  return walkObject(node as Record<string, unknown>, states, w, { ...at, selected });
}

function walkObject(obj: Record<string, unknown>, states: PathStates, w: Walk, at: At): unknown {
  const paths = w.m.jsonPaths;
  let copy: Record<string, unknown> | null = null;
  let renamed: Map<string, string> | null = null;
  for (const key of Object.keys(obj)) {
    if (at.keep?.has(key) || (at.keep && key === '_meta')) {
      if (key === '_meta') {
        const v = walkMeta(obj[key], states, w, at);
        if (v !== obj[key]) (copy ??= copyOf(obj))[key] = v;
      }
      continue;
    }
    let next = stepStates(states, paths, key);
    // A tool's structured output is a document of its own: jsonPaths also apply from its root.
    if (key === STRUCTURED_KEY) next = unionStates(next, startStates(paths));
    const mime = key === BLOB_KEY && typeof obj.mimeType === 'string' ? obj.mimeType : undefined;
    const v = walk(obj[key], next, w, { selected: at.selected, depth: at.depth + 1, key, keep: undefined, mime });
    if (v !== obj[key]) (copy ??= copyOf(obj))[key] = v;
    const k = w.m.masker.mask(key);
    if (k.count > 0) {
      w.count += k.count;
      (renamed ??= new Map()).set(key, k.text);
    }
  }
  if (renamed) return renameKeys(copy ?? obj, renamed);
  return copy ?? obj;
}

/** An agent request's `_meta`: masked, but its progressToken (the server echoes it in progress notifications) kept. */
function walkMeta(meta: unknown, states: PathStates, w: Walk, at: At): unknown {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
    return walk(meta, stepStates(states, w.m.jsonPaths, '_meta'), w, {
      selected: at.selected,
      depth: at.depth + 1,
      key: '_meta',
      keep: undefined,
    });
  }
  const next = stepStates(states, w.m.jsonPaths, '_meta');
  return walkObject(meta as Record<string, unknown>, next, w, {
    selected: at.selected,
    depth: at.depth + 1,
    key: '_meta',
    keep: PROGRESS_TOKEN,
  });
}

const PROGRESS_TOKEN: ReadonlySet<string> = new Set(['progressToken']);

function unionStates(a: PathStates, b: PathStates): PathStates {
  return a.map((s, p) => {
    const merged = [...s];
    for (const i of b[p]) if (!merged.includes(i)) merged.push(i);
    return merged;
  });
}

function whole(value: string, w: Walk): string {
  w.count++;
  return w.m.masker.maskWhole(value);
}

/**
 * A `text` holding a JSON object or array, masked as a document of its own; undefined when it is
 * not one (then it is masked as text). Re-serialised when masking changed it or a key repeats
 * (what was masked is the parse, where the last value wins).
 */
function maskJsonText(text: string, w: Walk): string | undefined {
  const doc = parseDocument(text);
  if (doc === undefined) return undefined;
  if (jsonTooDeep(doc)) throw new McpUnmaskableError(`a JSON text in the MCP message is ${new JsonTooDeepError().message}`);
  const r = maskJsonDocument(doc, { masker: w.m.masker, jsonPaths: w.m.jsonPaths });
  w.count += r.count;
  if (r.doc === doc && findDuplicateKey(text) === undefined) return text;
  return JSON.stringify(r.doc);
}

function parseDocument(text: string): unknown {
  let i = 0;
  while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  if (text[i] !== '{' && text[i] !== '[') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A mimeType that says the bytes are text (what a detector must be able to read). */
const TEXT_MIME = /^(text\/|application\/(json|xml|csv|x-ndjson|yaml|x-yaml|javascript|sql)\b)|\+(json|xml)\b/i;

type TextEncodingName = 'utf8' | 'utf8-bom' | 'utf16le' | 'utf16be';

/**
 * The text in a blob's bytes: UTF-8 (with or without its byte-order mark) or UTF-16 with its
 * byte-order mark. undefined for anything else: binary, or text it cannot read (UTF-16 without a
 * mark, UTF-32, compressed); NUL bytes mean it is not UTF-8 text.
 */
function decodeBlob(bytes: Buffer): { text: string; enc: TextEncodingName } | undefined {
  if (
    bytes.length >= 4 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe && bytes[2] === 0 && bytes[3] === 0) || (bytes[0] === 0 && bytes[1] === 0))
  )
    return undefined;
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return { text: bytes.subarray(2).toString('utf16le'), enc: 'utf16le' };
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) {
    const swapped = Buffer.from(bytes.subarray(2));
    if (swapped.length % 2 !== 0) return undefined;
    return { text: swapped.swap16().toString('utf16le'), enc: 'utf16be' };
  }
  if (!isUtf8(bytes) || bytes.includes(0)) return undefined;
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf)
    return { text: bytes.subarray(3).toString('utf8'), enc: 'utf8-bom' };
  return { text: bytes.toString('utf8'), enc: 'utf8' };
}

function encodeBlob(text: string, enc: TextEncodingName): Buffer {
  switch (enc) {
    case 'utf8':
      return Buffer.from(text, 'utf8');
    case 'utf8-bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]);
    case 'utf16le':
      return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    case 'utf16be':
      return Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]);
  }
}

/**
 * A base64 `blob` holding text (UTF-8, or UTF-16 with its byte-order mark): masked as a text (or
 * a JSON document) and re-encoded as it came when that changed it. Binary content gives undefined
 * (then the base64 string itself only goes through the detectors); a blob whose mimeType says
 * text but whose bytes cannot be read as text (compressed, UTF-16 without a mark, UTF-32) is
 * refused: it would pass unmasked.
 */
function maskBlob(blob: string, w: Walk, mime: string | undefined): string | undefined {
  // Only canonical base64: Buffer.from skips what is not base64, so "call 4155552671" would decode
  // to noise and its plain text would never meet a detector.
  if (blob.length % 4 !== 0 || !BASE64.test(blob)) return undefined;
  const bytes = Buffer.from(blob, 'base64');
  if (bytes.length === 0) return undefined;
  const decoded = decodeBlob(bytes);
  if (!decoded) {
    if (mime !== undefined && TEXT_MIME.test(mime)) {
      throw new McpUnmaskableError(
        `a blob of type ${mime} cannot be read as text (compressed, or an encoding without a byte-order mark), so it cannot be masked`,
      );
    }
    return undefined;
  }
  const text = decoded.text;
  const asDoc = maskJsonText(text, w);
  let masked: string;
  if (asDoc !== undefined) {
    masked = asDoc;
  } else {
    const r = w.m.masker.mask(text);
    w.count += r.count;
    masked = r.text;
  }
  return masked === text ? blob : encodeBlob(masked, decoded.enc).toString('base64');
}
