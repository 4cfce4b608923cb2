// Micro-benchmark for MCP message masking (sidecar/mcp/mask-messages.ts): CPU time per server
// message through maskServerMessage with a typical policy (five detectors, redact), next to what
// the MCP route does to every message anyway (JSON.parse of the event data, JSON.stringify of the
// message sent on), on the same machine in the same run.
//   npx tsc -p tsconfig.dev.json && node dist-dev/bench/mcp-mask.js
// Best of 12 rounds of process CPU time (meaningful on a shared, busy machine).
import { createTextMasker } from '../common/masking/masker';
import { parseJsonPath } from '../common/policy/syntax';
import { maskServerMessage, type McpMaskPlan } from '../sidecar/mcp/mask-messages';

const hashKey = Buffer.from('bench-key-0123456789abcdef');
const detectors = createTextMasker({ detectors: ['email', 'credit-card', 'us-ssn', 'phone', 'secret-key'], strategy: 'redact', hashKey });
const plan: McpMaskPlan = { maskers: [{ rule: 'pii', masker: detectors, jsonPaths: [] }] };
const withPaths: McpMaskPlan = { maskers: [{ rule: 'pii', masker: detectors, jsonPaths: [parseJsonPath('$..address')] }] };

const rows = Array.from({ length: 8 }, (_, i) => ({
  id: 1000 + i,
  name: `Customer ${i}`,
  plan: 'premium',
  city: 'Zürich',
  since: '2024-01-15',
}));
const plainResult = {
  jsonrpc: '2.0',
  id: 7,
  result: { content: [{ type: 'text', text: JSON.stringify(rows) }], structuredContent: { rows } },
};
const piiRows = rows.map((r) => ({ ...r, email: `c${r.id}@example.com`, card: '4111 1111 1111 1111' }));
const piiResult = {
  jsonrpc: '2.0',
  id: 8,
  result: { content: [{ type: 'text', text: JSON.stringify(piiRows) }], structuredContent: { rows: piiRows } },
};
const tools = Array.from({ length: 20 }, (_, i) => ({
  name: `tool_${i}`,
  description: 'Looks things up in the CRM and returns the matching records, newest first.',
  inputSchema: { type: 'object', properties: { query: { type: 'string' }, limit: { type: 'number' } }, required: ['query'] },
}));
const toolsList = { jsonrpc: '2.0', id: 2, result: { tools, nextCursor: 'eyJwYWdlIjoyfQ==' } };
const progress = {
  jsonrpc: '2.0',
  method: 'notifications/progress',
  params: { progressToken: 'p-1', progress: 3, total: 10, message: 'step 3' },
};

let sink = 0;

function measure(run: () => unknown): number {
  const perRound = 5_000;
  let best = Infinity;
  for (let r = 0; r < 12; r++) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < perRound; k++) if (run()) sink++;
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / perRound);
  }
  return best;
}

function row(label: string, msg: object): void {
  const text = JSON.stringify(msg);
  const mask = measure(() => maskServerMessage(msg, plan).count + 1);
  const paths = measure(() => maskServerMessage(msg, withPaths).count + 1);
  const parse = measure(() => JSON.parse(text) !== null);
  const stringify = measure(() => JSON.stringify(msg).length);
  console.log(
    `${label.padEnd(30)} ${String(text.length).padStart(6)} B   mask ${mask.toFixed(1).padStart(6)} µs   mask+jsonPath ${paths.toFixed(1).padStart(6)} µs   | parse ${parse.toFixed(1).padStart(5)} µs   stringify ${stringify.toFixed(1).padStart(5)} µs`,
  );
}

function main(): void {
  console.log(`node ${process.version}; best-of-12 CPU µs per message`);
  row('tool result, no PII', plainResult);
  row('tool result, PII (16 values)', piiResult);
  row('tools/list, 20 tools', toolsList);
  row('progress notification', progress);
  if (sink < 0) console.log(sink);
}

main();
