// docs/policy-reference.md is generated from the CRD (tools/gen-policy-reference.ts): it must be
// exactly what `make docs` would write, list every field of the schema, and show examples that
// `warden validate` accepts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { validateAccessPolicy } from '../common/policy/schema';
import {
  anchor,
  CRD_FILE,
  DOC_FILE,
  parseCrd,
  renderPolicyFields,
  renderPolicyReference,
  schemaFields,
  SECTIONS,
} from '../tools/gen-policy-reference';
import { SECTION_EXAMPLES } from '../tools/gen-policy-reference-examples';

const ROOT = path.resolve(__dirname, '..');
const crdText = fs.readFileSync(path.join(ROOT, CRD_FILE), 'utf8');
const doc = fs.readFileSync(path.join(ROOT, DOC_FILE), 'utf8');

test(`${DOC_FILE} is what \`make docs\` writes`, () => {
  const expected = renderPolicyReference(doc, crdText);
  if (expected !== doc) {
    const a = doc.split('\n');
    const b = expected.split('\n');
    const line = a.findIndex((l, i) => l !== b[i]);
    throw new Error(
      `${DOC_FILE} is out of date with ${CRD_FILE} (or the statement classes): run \`make docs\` and commit it.\n` +
        `first difference at line ${line + 1}:\n  page:      ${a[line] ?? '(end)'}\n  generated: ${b[line] ?? '(end)'}`,
    );
  }
});

test('every field of the schema has a row, with its type', () => {
  const { schema } = parseCrd(crdText);
  const fields = schemaFields(schema);
  expect(fields.length).toBeGreaterThan(100);
  const rendered = renderPolicyFields(crdText);
  const missing = fields.filter((f) => !rendered.includes(`| \`${f.path}\``)).map((f) => f.path);
  expect(missing).toEqual([]);
  // Spot checks of what a row says.
  expect(rendered).toMatch(
    /\| `spec\.targets\[\]\.postgres\.port` \| `integer \(int32\)` \| `5432` \| Port of the upstream PostgreSQL server\. 1–65535\. \|/,
  );
  expect(rendered).toMatch(/\| `spec\.targets\[\]\.name` \*\*required\*\* \| `string` \|/);
  expect(rendered).toContain('One of `allow`, `deny`');
  expect(rendered).toContain('Checked: ports 15000 and 15001 are used by the sidecar itself.');
  expect(rendered).toContain('- a rule with action hold needs approval.approvers with at least one user or group\n');
  expect(rendered).toContain('| `spec.podSelector.matchLabels` | `map[string]string` |');
});

test('every CEL rule of the CRD is described by its message', () => {
  const messages = [...crdText.matchAll(/^\s*message: (.+)$/gm)].map((m) => m[1].trim());
  expect(messages.length).toBeGreaterThan(20);
  const rendered = renderPolicyFields(crdText);
  expect(messages.filter((m) => !rendered.toLowerCase().includes(m.toLowerCase()))).toEqual([]);
});

test('each section has an example that warden validate accepts and that uses the section', () => {
  expect(Object.keys(SECTION_EXAMPLES).sort()).toEqual(SECTIONS.map((s) => s.path).sort());
  const base = { apiVersion: 'agentwarden.io/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'example', namespace: 'agents' } };
  const minimalSpec = {
    targets: [{ name: 'crm', postgres: { host: 'db', database: 'crm', credentialsSecret: 'crm-db', listenPort: 15432 } }],
  };
  for (const { path: at } of SECTIONS) {
    const parsed = YAML.parse(SECTION_EXAMPLES[at]) as Record<string, unknown>;
    const policy = { ...base, spec: minimalSpec, ...parsed };
    const result = validateAccessPolicy(policy);
    if (!result.ok) throw new Error(`the example of section ${at || '(top)'} is invalid: ${JSON.stringify(result.errors)}`);
    expect([at, valuesAt(policy, at).length > 0]).toEqual([at, true]);
  }
});

test('the page links every section it generates', () => {
  for (const s of SECTIONS) expect(doc).toContain(`<a id="${anchor(s.path)}"></a>`);
  expect(doc).toContain('](mcp.md)');
});

/** The values an example holds at a section path (`spec.rules[].match.sql`: each rule's match.sql). */
function valuesAt(root: unknown, at: string): unknown[] {
  let values: unknown[] = [root];
  for (const part of at === '' ? [] : at.split('.')) {
    const name = part.replace(/\[\]$/, '');
    values = values.flatMap((v) => {
      const child = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[name] : undefined;
      if (child === undefined) return [];
      return part.endsWith('[]') ? (Array.isArray(child) ? child : []) : [child];
    });
  }
  return values;
}
