import { gzipSync } from 'node:zlib';
import { createTextMasker } from '../../common/masking/masker';
import { hashToken } from '../../common/masking/strategies';
import { parseJsonPath } from '../../common/policy/syntax';
import type { DetectorName, MaskStrategy } from '../../common/policy/types';
import { maskClientMessage, maskServerMessage, McpUnmaskableError, type McpMaskPlan } from './mask-messages';

const hashKey = Buffer.from('0123456789abcdef0123456789abcdef');
const DETECTORS: DetectorName[] = ['credit-card', 'email', 'us-ssn', 'phone', 'iban', 'secret-key'];

function plan(opts: { detectors?: DetectorName[]; jsonPaths?: string[]; strategy?: MaskStrategy } = {}): McpMaskPlan {
  return {
    maskers: [
      {
        rule: 'pii',
        masker: createTextMasker({ detectors: opts.detectors ?? DETECTORS, strategy: opts.strategy ?? 'redact', hashKey }),
        jsonPaths: (opts.jsonPaths ?? []).map(parseJsonPath),
      },
    ],
  };
}

const CARD = '4111 1111 1111 1111';
const MAIL = 'jane.doe@example.com';

function toolResult(result: unknown, id: unknown = 7): Record<string, unknown> {
  return { jsonrpc: '2.0', id, result };
}

describe('maskServerMessage', () => {
  it('masks content[].text, structuredContent and keeps the envelope', () => {
    const msg = toolResult({
      content: [{ type: 'text', text: `Customer ${MAIL}, card ${CARD}` }],
      structuredContent: { customers: [{ name: 'Jane', email: MAIL, card: CARD }] },
      isError: false,
    });
    const r = maskServerMessage(msg, plan());
    expect(r.message).toEqual(
      toolResult({
        content: [{ type: 'text', text: 'Customer [REDACTED], card [REDACTED]' }],
        structuredContent: { customers: [{ name: 'Jane', email: '[REDACTED]', card: '[REDACTED]' }] },
        isError: false,
      }),
    );
    expect(r.count).toBe(4);
    // the input is not mutated
    expect((msg.result as any).content[0].text).toContain(MAIL);
  });

  it('returns the very same object when nothing matches', () => {
    const msg = toolResult({ content: [{ type: 'text', text: 'no customers found' }] });
    const r = maskServerMessage(msg, plan());
    expect(r.message).toBe(msg);
    expect(r.count).toBe(0);
    expect(maskServerMessage(msg, null).message).toBe(msg);
    expect(maskServerMessage(msg, { maskers: [] }).message).toBe(msg);
  });

  it('masks a JSON text as a document: escaped values decoded, jsonPaths from its own root', () => {
    // `\u0040` is an @ once parsed: the raw text has no address in it, the agent's parse does.
    const text = '{"rows":[{"email":"jane\\u0040example.com","address":"1 Main St"}]}';
    const msg = toolResult({ content: [{ type: 'text', text }] });
    const r = maskServerMessage(msg, plan({ jsonPaths: ['$.rows[*].address'] }));
    const out = JSON.parse((r.message as any).result.content[0].text);
    expect(out).toEqual({ rows: [{ email: '[REDACTED]', address: '[REDACTED]' }] });
    expect(r.count).toBe(2);
  });

  it('re-serialises a JSON text that repeats a key, so the copy nobody masked is gone', () => {
    // JSON.parse keeps the last `address` (masked by the path); a first-wins reader would get the first.
    const text = '{"address":"1 Main St","address":null}';
    const r = maskServerMessage(toolResult({ content: [{ type: 'text', text }] }), plan({ jsonPaths: ['$.address'] }));
    expect((r.message as any).result.content[0].text).toBe('{"address":null}');
  });

  it('applies jsonPaths from structuredContent and from the payload, once each value', () => {
    const msg = toolResult({ structuredContent: { address: '1 Main St', nested: { address: '2 Side St' } } });
    const fromDoc = maskServerMessage(msg, plan({ jsonPaths: ['$.address'], detectors: [] }));
    expect((fromDoc.message as any).result.structuredContent).toEqual({ address: '[REDACTED]', nested: { address: '2 Side St' } });
    const recursive = maskServerMessage(msg, plan({ jsonPaths: ['$..address'], detectors: [], strategy: 'hash' }));
    // Selected from both roots, masked once: hash of the value, not of its hash.
    expect((recursive.message as any).result.structuredContent).toEqual({
      address: hashToken('1 Main St', hashKey),
      nested: { address: hashToken('2 Side St', hashKey) },
    });
    expect(recursive.count).toBe(2);
  });

  it('masks embedded resources, resources/read contents and text blobs', () => {
    const blob = Buffer.from(`ssn 123-45-6789 for ${MAIL}`).toString('base64');
    const jsonBlob = Buffer.from(JSON.stringify({ card: CARD })).toString('base64');
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe]).toString('base64');
    const msg = toolResult({
      contents: [
        { uri: 'crm://customers/1', mimeType: 'text/plain', text: `Mail ${MAIL}` },
        { uri: 'crm://customers/1.txt', blob },
        { uri: 'crm://customers/1.json', mimeType: 'application/json', blob: jsonBlob },
        { uri: 'crm://logo.png', mimeType: 'image/png', blob: png },
      ],
    });
    const r = maskServerMessage(msg, plan());
    const contents = (r.message as any).result.contents;
    expect(contents[0].text).toBe('Mail [REDACTED]');
    expect(Buffer.from(contents[1].blob, 'base64').toString()).toBe('ssn [REDACTED] for [REDACTED]');
    expect(JSON.parse(Buffer.from(contents[2].blob, 'base64').toString())).toEqual({ card: '[REDACTED]' });
    expect(contents[3].blob).toBe(png);
    expect(contents[0].uri).toBe('crm://customers/1');
  });

  it('masks UTF-16 text blobs (with their mark) and refuses a text blob it cannot read', () => {
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`name,email\nAlice,${MAIL}\n`, 'utf16le')]).toString('base64');
    const r = maskServerMessage(toolResult({ contents: [{ uri: 'file:///a.csv', mimeType: 'text/csv', blob: le }] }), plan());
    const out = Buffer.from((r.message as any).result.contents[0].blob, 'base64');
    expect([out[0], out[1]]).toEqual([0xff, 0xfe]);
    expect(out.subarray(2).toString('utf16le')).toBe('name,email\nAlice,[REDACTED]\n');
    const noMark = Buffer.from(`email ${MAIL}`, 'utf16le').toString('base64');
    expect(() => maskServerMessage(toolResult({ contents: [{ uri: 'x', mimeType: 'text/plain', blob: noMark }] }), plan())).toThrow(
      McpUnmaskableError,
    );
    const gz = gzipSync(JSON.stringify({ email: MAIL })).toString('base64');
    expect(() => maskServerMessage(toolResult({ contents: [{ uri: 'x', mimeType: 'application/json', blob: gz }] }), plan())).toThrow(
      /cannot be read as text/,
    );
    // binary content of a binary type passes as it is
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0xff]).toString('base64');
    expect(maskServerMessage(toolResult({ contents: [{ uri: 'x', mimeType: 'image/png', blob: png }] }), plan()).count).toBe(0);
  });

  it('masks a "blob" that is not base64 as text, so plain text cannot hide in one', () => {
    const r = maskServerMessage(toolResult({ contents: [{ uri: 'x://1', blob: `call ${MAIL}` }] }), plan());
    expect((r.message as any).result.contents[0].blob).toBe('call [REDACTED]');
  });

  it('masks embedded resources inside tool content', () => {
    const msg = toolResult({
      content: [{ type: 'resource', resource: { uri: 'crm://c/1', mimeType: 'text/plain', text: `card ${CARD}` } }],
    });
    const r = maskServerMessage(msg, plan());
    expect((r.message as any).result.content[0].resource.text).toBe('card [REDACTED]');
  });

  it('masks errors, logging and progress notifications, sampling and elicitation requests', () => {
    const err = { jsonrpc: '2.0', id: 3, error: { code: -32603, message: `lookup failed for ${MAIL}`, data: { card: CARD } } };
    expect(maskServerMessage(err, plan()).message).toEqual({
      jsonrpc: '2.0',
      id: 3,
      error: { code: -32603, message: 'lookup failed for [REDACTED]', data: { card: '[REDACTED]' } },
    });
    const log = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: { msg: `charged ${CARD}` } } };
    expect((maskServerMessage(log, plan()).message as any).params.data.msg).toBe('charged [REDACTED]');
    // The progress token is echoed back to the client as it was sent, even when it looks like a phone number.
    const progress = {
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'p-1', progress: 1, total: 2, message: `mailing ${MAIL}` },
    };
    expect(maskServerMessage(progress, plan()).message).toEqual({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'p-1', progress: 1, total: 2, message: 'mailing [REDACTED]' },
    });
    const sampling = {
      jsonrpc: '2.0',
      id: 'srv-1',
      method: 'sampling/createMessage',
      params: { messages: [{ role: 'user', content: { type: 'text', text: `Summarise ${MAIL}` } }], maxTokens: 100 },
    };
    expect((maskServerMessage(sampling, plan()).message as any).params.messages[0].content.text).toBe('Summarise [REDACTED]');
    const elicit = {
      jsonrpc: '2.0',
      id: 9,
      method: 'elicitation/create',
      params: { message: `Confirm card ${CARD}?`, requestedSchema: {} },
    };
    expect((maskServerMessage(elicit, plan()).message as any).params.message).toBe('Confirm card [REDACTED]?');
  });

  it('masks cursors and tokens of a server like any value; refuses an id or method it cannot rewrite', () => {
    // A cursor may be the last row's key: masked (pagination then fails, closed, rather than leak).
    const msg = {
      jsonrpc: '2.0',
      id: 3,
      result: {
        tools: [{ name: 'search', description: `ask ${MAIL}` }],
        nextCursor: `last=${MAIL}`,
        _meta: { progressToken: 4111111111111111 },
      },
    };
    expect(maskServerMessage(msg, plan()).message).toEqual({
      jsonrpc: '2.0',
      id: 3,
      result: {
        tools: [{ name: 'search', description: 'ask [REDACTED]' }],
        nextCursor: 'last=[REDACTED]',
        _meta: { progressToken: '[REDACTED]' },
      },
    });
    expect(() => maskServerMessage({ jsonrpc: '2.0', id: MAIL, method: 'sampling/createMessage', params: {} }, plan())).toThrow(
      McpUnmaskableError,
    );
    expect(() => maskServerMessage({ jsonrpc: '2.0', method: 'notifications/123-45-6789' }, plan())).toThrow(McpUnmaskableError);
    expect(() => maskServerMessage({ jsonrpc: '2.0', id: '4111111111111111', result: {} }, plan())).toThrow(McpUnmaskableError);
    const init = toolResult({ protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: 'crm', version: '1.0.0' } });
    expect(maskServerMessage(init, plan()).message).toBe(init);
  });

  it('masks numbers, object keys and jsonPath-selected scalars whole', () => {
    const msg = toolResult({ structuredContent: { byEmail: { [MAIL]: { card: 4111111111111111, vip: true } } } });
    const r = maskServerMessage(msg, plan({ jsonPaths: ['$..vip'] }));
    expect((r.message as any).result.structuredContent).toEqual({ byEmail: { '[REDACTED]': { card: '[REDACTED]', vip: '[REDACTED]' } } });
  });

  it('skips the walk when the bytes hold nothing a masker could find, and not otherwise', () => {
    const msg = toolResult({ content: [{ type: 'text', text: 'nothing here' }] });
    const raw = Buffer.from(JSON.stringify(msg));
    expect(maskServerMessage(msg, plan(), raw).message).toBe(msg);
    // an escape could hide an address from the byte scan: walked
    const escaped = toolResult({ content: [{ type: 'text', text: 'jane\u0040example.com' }] });
    const rawEscaped = Buffer.from('{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"jane\\u0040example.com"}]}}');
    expect((maskServerMessage(escaped, plan(), rawEscaped).message as any).result.content[0].text).toBe('[REDACTED]');
    // a blob hides everything from the byte scan: walked
    const b = toolResult({ contents: [{ uri: 'x', blob: Buffer.from(MAIL).toString('base64') }] });
    const r = maskServerMessage(b, plan(), Buffer.from(JSON.stringify(b)));
    expect(Buffer.from((r.message as any).result.contents[0].blob, 'base64').toString()).toBe('[REDACTED]');
  });

  it('fails closed on what it cannot walk', () => {
    expect(() => maskServerMessage([toolResult({})], plan())).toThrow(McpUnmaskableError);
    expect(() => maskServerMessage('x', plan())).toThrow(McpUnmaskableError);
    let deep: unknown = 'x';
    for (let i = 0; i < 200; i++) deep = { a: deep };
    expect(() => maskServerMessage(toolResult({ structuredContent: deep }), plan())).toThrow(/deeper than/);
    const deepText = '['.repeat(200) + ']'.repeat(200);
    expect(() => maskServerMessage(toolResult({ content: [{ type: 'text', text: deepText }] }), plan())).toThrow(McpUnmaskableError);
  });

  it('keeps a __proto__ key a key', () => {
    const msg = JSON.parse(`{"jsonrpc":"2.0","id":1,"result":{"__proto__":{"x":"${MAIL}"},"y":"${MAIL}"}}`);
    const r = maskServerMessage(msg, plan());
    expect(Object.keys((r.message as any).result)).toEqual(['__proto__', 'y']);
    expect(JSON.stringify(r.message)).toBe('{"jsonrpc":"2.0","id":1,"result":{"__proto__":{"x":"[REDACTED]"},"y":"[REDACTED]"}}');
  });
});

describe('maskClientMessage', () => {
  const call = (args: unknown, name = 'search_customers') => ({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name, arguments: args },
  });

  it('masks tools/call arguments with jsonPaths from the arguments object; name and id untouched', () => {
    const msg = call({ query: `email ${MAIL}`, cursor: '4111111111111111', note: 'x' });
    const r = maskClientMessage(msg, plan({ jsonPaths: ['$.note'] }));
    // `cursor` inside arguments is the tool's data, not protocol plumbing
    expect(r.message).toEqual(call({ query: 'email [REDACTED]', cursor: '[REDACTED]', note: '[REDACTED]' }));
    expect(r.count).toBe(3);
  });

  it('leaves the tool name, resource URIs and other requests alone', () => {
    const named = call({ q: 'a' }, `mail_${MAIL}`);
    expect(maskClientMessage(named, plan()).message).toBe(named);
    const read = { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: `mailto:${MAIL}` } };
    expect(maskClientMessage(read, plan()).message).toBe(read);
    const list = { jsonrpc: '2.0', id: 3, method: 'tools/list', params: { cursor: '4111111111111111' } };
    expect(maskClientMessage(list, plan()).message).toBe(list);
  });

  it('masks prompts/get arguments, completion values and answers to server requests', () => {
    const prompt = { jsonrpc: '2.0', id: 4, method: 'prompts/get', params: { name: 'summarise', arguments: { who: MAIL } } };
    expect((maskClientMessage(prompt, plan()).message as any).params.arguments.who).toBe('[REDACTED]');
    const complete = {
      jsonrpc: '2.0',
      id: 5,
      method: 'completion/complete',
      params: { ref: { type: 'ref/prompt', name: 'p' }, argument: { name: 'who', value: MAIL }, context: { arguments: { card: CARD } } },
    };
    const c = maskClientMessage(complete, plan()).message as any;
    expect(c.params.argument).toEqual({ name: 'who', value: '[REDACTED]' });
    expect(c.params.context.arguments.card).toBe('[REDACTED]');
    const answer = { jsonrpc: '2.0', id: 'srv-1', result: { action: 'accept', content: { card: CARD } } };
    expect(maskClientMessage(answer, plan()).message).toEqual({
      jsonrpc: '2.0',
      id: 'srv-1',
      result: { action: 'accept', content: { card: '[REDACTED]' } },
    });
    const cancelled = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'r-1', reason: `by ${MAIL}` } };
    expect((maskClientMessage(cancelled, plan()).message as any).params).toEqual({ requestId: 'r-1', reason: 'by [REDACTED]' });
  });

  it('masks every other params value of a request (_meta, made-up keys and methods, clientInfo), keeping what is routed on', () => {
    const c = maskClientMessage(
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'search', arguments: {}, extra: MAIL, _meta: { progressToken: 4155552671, note: MAIL } },
      },
      plan(),
    );
    expect((c.message as any).params).toEqual({
      name: 'search',
      arguments: {},
      extra: '[REDACTED]',
      _meta: { progressToken: 4155552671, note: '[REDACTED]' },
    });
    const made = maskClientMessage({ jsonrpc: '2.0', id: 2, method: 'x/exfil', params: { data: MAIL } }, plan());
    expect((made.message as any).params).toEqual({ data: '[REDACTED]' });
    const init = maskClientMessage(
      {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: MAIL, version: '1' } },
      },
      plan(),
    );
    expect((init.message as any).params).toEqual({
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: '[REDACTED]', version: '1' },
    });
  });

  it('returns the same object when nothing changed, and refuses what it cannot read', () => {
    const msg = call({ q: 'plain' });
    expect(maskClientMessage(msg, plan()).message).toBe(msg);
    expect(() => maskClientMessage({ jsonrpc: '2.0', id: 1, method: 7, params: {} }, plan())).toThrow(McpUnmaskableError);
    expect(() => maskClientMessage(null, plan())).toThrow(McpUnmaskableError);
  });
});
