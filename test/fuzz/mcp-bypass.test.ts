// Differential fuzzer for the MCP route: hostile spellings of a call to delete_customer (which the
// policy denies everywhere) go through the sidecar to the official SDK server, and the oracle is
// the server's own effect: its delete_customer never runs. Spellings: any character of the name
// or of the "name"/"method"/"params" keys escaped (\uXXXX, either hex case), keys in other cases,
// the key repeated before or after a harmless value, the call inside a batch among harmless
// messages, whitespace anywhere JSON allows it, a byte order mark. A control run shows the same
// generator does reach delete_customer when sent straight to the server.
import fc from 'fast-check';
import { request } from 'undici';
import type { AccessPolicySpec } from '../../common/policy/types';
import { startMcpFixture, type McpFixture } from '../support/mcp/mcp-server';
import { startMcpProxy, type McpProxy } from '../support/mcp/mcp-proxy';

const RUNS = Number(process.env.MCP_FUZZ_RUNS ?? 300);

let fixture: McpFixture;
let proxy: McpProxy;

beforeAll(async () => {
  fixture = await startMcpFixture({ json: true, stateless: true });
  const spec: AccessPolicySpec = {
    defaultAction: 'allow',
    targets: [{ name: 'crm', mcp: { url: fixture.url } }],
    rules: [{ name: 'no-deletes', action: 'deny', match: { mcp: { tools: ['delete_*'] } } }],
  };
  proxy = await startMcpProxy({ spec });
});
afterAll(async () => {
  await proxy?.close();
  await fixture?.close();
});

/** A JSON string literal of s, each character escaped or not as `escapes` says. */
function spell(s: string, escapes: readonly boolean[], upperHex: boolean): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    if (escapes[i % escapes.length]) {
      const hex = s.charCodeAt(i).toString(16).padStart(4, '0');
      out += '\\u' + (upperHex ? hex.toUpperCase() : hex);
    } else out += s[i];
  }
  return out + '"';
}

/** True about one time in six: spellings the JavaScript server would not read as the call stay a minority. */
const rarely = fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) });
const ws = fc.constantFrom('', ' ', '\n', '\t', '\r\n  ');
const escapes = fc.array(fc.boolean(), { minLength: 1, maxLength: 8 });
const keySpelling = (key: string): fc.Arbitrary<string> =>
  fc
    .record({ upper: fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }), esc: escapes, hex: fc.boolean(), changeCase: rarely })
    .map(({ upper, esc, hex, changeCase }) => {
      const k = changeCase ? [...key].map((c, i) => (upper[i % upper.length] ? c.toUpperCase() : c)).join('') : key;
      return spell(k, esc, hex);
    });

/** One call to delete_customer, spelled in a hostile way. */
const hostileCall = fc
  .record({
    id: fc.integer({ min: 1, max: 1_000_000 }),
    nameKey: keySpelling('name'),
    decoyKey: keySpelling('name'),
    nameValue: fc.record({ esc: escapes, hex: fc.boolean() }).map(({ esc, hex }) => spell('delete_customer', esc, hex)),
    methodKey: keySpelling('method'),
    methodValue: fc.record({ esc: escapes, hex: fc.boolean() }).map(({ esc, hex }) => spell('tools/call', esc, hex)),
    paramsKey: keySpelling('params'),
    decoy: fc.constantFrom('none', 'before', 'after'),
    w: fc.array(ws, { minLength: 8, maxLength: 8 }),
  })
  .map((r) => {
    const w = r.w;
    const name = `${r.nameKey}${w[0]}:${w[1]}${r.nameValue}`;
    const decoy = `${r.decoyKey}:"search_customers"`;
    const params = r.decoy === 'before' ? `${decoy},${name}` : r.decoy === 'after' ? `${name},${decoy}` : name;
    return `{${w[2]}"jsonrpc":"2.0",${w[3]}"id":${r.id},${r.methodKey}:${w[4]}${r.methodValue},${r.paramsKey}:{${w[5]}${params},"arguments":{"id":"fz${r.id}"}${w[6]}}${w[7]}}`;
  });

const harmless = fc
  .integer({ min: 1, max: 1000 })
  .map((i) => `{"jsonrpc":"2.0","id":"h${i}","method":"tools/call","params":{"name":"search_customers","arguments":{"query":"q"}}}`);

const body = fc
  .record({
    call: hostileCall,
    batch: fc.boolean(),
    before: fc.array(harmless, { maxLength: 2 }),
    after: fc.array(harmless, { maxLength: 2 }),
    bom: rarely,
  })
  .map((b) => (b.bom ? '\ufeff' : '') + (b.batch ? `[${[...b.before, b.call, ...b.after].join(',')}]` : b.call));

async function post(url: string, text: string): Promise<number> {
  const r = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
    body: text,
  });
  await r.body.text();
  return r.statusCode;
}

it('never lets a spelling of delete_customer run on the server', async () => {
  await fc.assert(
    fc.asyncProperty(body, async (text) => {
      const before = fixture.deleted.length;
      const status = await post(proxy.url('crm'), text);
      expect(fixture.deleted.length).toBe(before);
      expect([200, 202, 400]).toContain(status);
    }),
    { numRuns: RUNS },
  );
});

it('control: the same spellings straight to the server do delete (the generator reaches the tool)', async () => {
  const samples = fc.sample(body, { numRuns: 60, seed: 7 });
  const before = fixture.deleted.length;
  for (const text of samples) await post(fixture.url, text);
  if (process.env.MCP_FUZZ_VERBOSE) console.log(`${fixture.deleted.length - before} of ${samples.length} deleted`);
  expect(fixture.deleted.length - before).toBeGreaterThan(10); // 28 of 60 with this seed
});
