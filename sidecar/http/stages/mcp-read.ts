// Read the MCP request (decision 6 of issue 13). POST: the body is read whole (bounded by the
// target's limit) and parsed by the strict reader; what it refuses is answered 400 with a JSON-RPC
// parse error; each message (every element of a batch) is classified; requests repeating an id are
// refused. A compressed body, or one declared in a charset other than UTF-8, is refused (415): what
// is judged must be what the server reads. GET (the server's event stream) and DELETE
// (session end) carry no body and pass. Any other method is 405.
import { HttpError } from '../errors';
import { declaredCharset } from '../routes/charset';
import { classifyMessage, idKey } from '../../mcp/messages';
import { readStrictJson } from '../../mcp/strict-json';
import type { RouteExchange } from './exchange';
import { readRequestBody } from './read-body';
import type { Stage } from './stage';

/** Most messages in one batch: each is judged and may be answered, so a huge batch would cost every other caller CPU. */
export const MAX_BATCH_MESSAGES = 1000;

export const mcpReadStage: Stage<RouteExchange> = {
  name: 'mcp-read',
  run(ex) {
    const { req } = ex;
    const maxBody = ex.plan!.maxBody;
    const cl = req.headers['content-length'];
    const declared = cl !== undefined ? Number(cl) : undefined;
    ex.hasBody = req.headers['transfer-encoding'] !== undefined || (declared !== undefined && declared > 0);
    if (ex.method === 'GET' || ex.method === 'DELETE') {
      if (ex.hasBody) throw new HttpError(400, 'bad_request', `an MCP ${ex.method} request carries no body`);
      return undefined;
    }
    if (ex.method !== 'POST') {
      throw new HttpError(
        405,
        'method_not_allowed',
        `MCP endpoints take POST, GET and DELETE, not ${ex.method}`,
        {},
        { allow: 'GET, POST, DELETE' },
      );
    }
    const encoding = String(req.headers['content-encoding'] ?? 'identity')
      .trim()
      .toLowerCase();
    if (encoding !== 'identity') {
      // The bytes judged must be the message the server reads: a compressed body is not read here, so it is refused.
      throw new HttpError(415, 'unsupported_encoding', `MCP request bodies are read as sent; content-encoding "${encoding}" is refused`, {
        code: -32600,
      });
    }
    const type = String(req.headers['content-type'] ?? '');
    const charset = (type.match(/charset/gi)?.length ?? 0) > 1 ? 'declared twice' : declaredCharset(type);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      // Servers decode the body in the charset it declares (body-parser: UTF-7 too); it is judged as UTF-8, so only UTF-8 passes.
      throw new HttpError(415, 'unsupported_charset', `MCP request bodies are UTF-8; charset "${charset}" is refused`, { code: -32600 });
    }
    if (declared !== undefined && declared > maxBody) {
      throw new HttpError(413, 'request_too_large', `request body of ${declared} bytes exceeds the limit of ${maxBody} bytes`);
    }
    ex.continueBody();
    return readMessages(ex, maxBody);
  },
};

async function readMessages(ex: RouteExchange, maxBody: number): Promise<void> {
  const raw = await readRequestBody(ex.req, maxBody, `body exceeds the limit of ${maxBody} bytes`);
  const parsed = readStrictJson(raw);
  if (!parsed.ok) throw new HttpError(400, 'parse_error', `MCP request refused: ${parsed.message}`, { code: -32700 });
  const mcp = ex.mcp!;
  mcp.batch = Array.isArray(parsed.value);
  const elements = mcp.batch ? (parsed.value as unknown[]) : [parsed.value];
  if (elements.length > MAX_BATCH_MESSAGES) {
    throw new HttpError(400, 'invalid_request', `a batch of ${elements.length} messages exceeds the limit of ${MAX_BATCH_MESSAGES}`, {
      code: -32600,
    });
  }
  for (const el of elements) {
    const message = classifyMessage(el);
    mcp.verdicts.push({ message, decision: undefined });
    if (message.kind !== 'request') continue;
    // Two requests with one id (as the server reads ids: 1 and 1.0, or past 2^53, are one) would
    // make an answer look like the other's (a tools/list answer taken for a ping's, unfiltered).
    const key = idKey(message.id);
    if (mcp.requestMethods.has(key)) {
      throw new HttpError(400, 'invalid_request', `two requests in one batch have the id ${JSON.stringify(message.id)}`, { code: -32600 });
    }
    mcp.requestMethods.set(key, message.method);
  }
  if (!mcp.batch) {
    const m = mcp.verdicts[0].message;
    mcp.id = m.kind === 'notification' ? null : m.id;
  }
  // What goes upstream is exactly what was judged (a stage that masks arguments re-serialises the parse).
  ex.bufferedBody = raw;
}
