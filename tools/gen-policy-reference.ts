// Writes the generated parts of docs/policy-reference.md: the field reference, rendered from the
// CRD's openAPIV3Schema (crds/accesspolicy.yaml stays the one source of truth), and the statement
// class table (common/policy/statement-classes.ts). Everything outside the generated regions is
// written by hand and kept as it is. `make docs` runs this; test/policy-reference.test.ts fails
// when the page differs from what this would write.
//
// Rendering is pure (text in, text out); only main() touches files. A dev tool: tsconfig.json
// leaves it out of dist/, tsconfig.dev.json builds it into dist-dev/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { statementClassesMarkdown } from '../common/policy/statement-classes';
import { SECTION_EXAMPLES } from './gen-policy-reference-examples';

/** The subset of a structural schema node this page shows. */
export interface SchemaNode {
  type?: string;
  format?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}

interface PrinterColumn {
  name: string;
  type: string;
  description?: string;
  jsonPath: string;
  priority?: number;
}

/** The page's sections, in order: a schema path ('' is the object itself) and its title. */
export const SECTIONS: readonly { path: string; title: string }[] = [
  { path: '', title: 'AccessPolicy' },
  { path: 'spec', title: 'spec: selection and defaults' },
  { path: 'spec.targets[]', title: 'Targets' },
  { path: 'spec.targets[].postgres', title: 'PostgreSQL targets' },
  { path: 'spec.targets[].http', title: 'HTTP targets' },
  { path: 'spec.targets[].mcp', title: 'MCP targets' },
  { path: 'spec.rules[]', title: 'Rules' },
  { path: 'spec.rules[].match.sql', title: 'Matching SQL' },
  { path: 'spec.rules[].match.http', title: 'Matching HTTP requests and responses' },
  { path: 'spec.rules[].match.mcp', title: 'Matching MCP messages' },
  { path: 'spec.rules[].approval', title: 'Approvals' },
  { path: 'spec.masking[]', title: 'Masking' },
  { path: 'spec.audit', title: 'Audit' },
  { path: 'spec.identity', title: 'Caller identity' },
  { path: 'status', title: 'Status' },
];

export const FIELDS_BEGIN = '<!-- policy-fields:begin (generated from crds/accesspolicy.yaml by `make docs`; a test checks it) -->';
export const FIELDS_END = '<!-- policy-fields:end -->';
export const CLASSES_BEGIN = '<!-- statement-classes:begin (generated from common/policy/statement-classes.ts; a test checks it) -->';
export const CLASSES_END = '<!-- statement-classes:end -->';

/** Reads the AccessPolicy CRD: its openAPIV3Schema and printer columns. */
export function parseCrd(crdText: string): { schema: SchemaNode; columns: PrinterColumn[] } {
  const crd = YAML.parse(crdText) as {
    spec: { versions: { schema: { openAPIV3Schema: SchemaNode }; additionalPrinterColumns?: PrinterColumn[] }[] };
  };
  const version = crd.spec.versions[0];
  return { schema: version.schema.openAPIV3Schema, columns: version.additionalPrinterColumns ?? [] };
}

/** Every field of `schema`, depth first, with its path (`spec.targets[].postgres.port`) and whether its parent requires it. */
export function schemaFields(schema: SchemaNode): { path: string; node: SchemaNode; required: boolean }[] {
  const out: { path: string; node: SchemaNode; required: boolean }[] = [];
  const walk = (node: SchemaNode, at: string): void => {
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const p = at === '' ? name : `${at}.${name}`;
      out.push({ path: p, node: child, required: (node.required ?? []).includes(name) });
      walk(child, p);
    }
    if (node.items !== undefined) walk(node.items, `${at}[]`);
  };
  walk(schema, '');
  return out;
}

/** The node at a section path (`spec.targets[]` is the targets array's items). */
function nodeAt(schema: SchemaNode, at: string): SchemaNode {
  let node: SchemaNode | undefined = schema;
  for (const part of at === '' ? [] : at.split('.')) {
    const name = part.replace(/(\[\])+$/, '');
    node = node?.properties?.[name];
    for (let i = 0; i < (part.length - name.length) / 2; i++) node = node?.items;
  }
  if (node === undefined) throw new Error(`the CRD has no field ${at} (a section of tools/gen-policy-reference.ts)`);
  return node;
}

/** The section a field is listed in: the longest section path it lies strictly below. */
function sectionOf(fieldPath: string): string {
  let best = '';
  for (const s of SECTIONS) {
    if (s.path === '') continue;
    if ((fieldPath.startsWith(`${s.path}.`) || fieldPath.startsWith(`${s.path}[]`)) && s.path.length > best.length) best = s.path;
  }
  return best;
}

/** `spec.targets[].postgres` → `spec-targets-postgres`, the id sections are linked by. */
export function anchor(sectionPath: string): string {
  return sectionPath === '' ? 'accesspolicy' : sectionPath.replace(/\[\]/g, '').replace(/\./g, '-').toLowerCase();
}

function typeName(node: SchemaNode): string {
  if (node.type === 'array') return `[]${node.items ? typeName(node.items) : 'any'}`;
  if (node.type === 'object' && typeof node.additionalProperties === 'object') return `map[string]${typeName(node.additionalProperties)}`;
  if (node.type === 'integer' && node.format !== undefined) return `integer (${node.format})`;
  return node.type ?? 'any';
}

/** Schema prose as Markdown: outside its code spans, `<` and `*` are literal characters, not HTML or emphasis. */
function prose(text: string): string {
  return text
    .replace(/\s*\n\s*/g, ' ')
    .split('`')
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/</g, '&lt;').replace(/\*/g, '\\*')))
    .join('`');
}

/** A table cell: one line, pipes escaped (also inside code spans, as GitHub's tables need). */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}

function code(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function range(min: number | undefined, max: number | undefined, unit: string): string | undefined {
  if (min === undefined && max === undefined) return undefined;
  if (min !== undefined && max !== undefined) return min === max ? `exactly ${min}${unit}` : `${min}–${max}${unit}`;
  return min !== undefined ? `at least ${min}${unit}` : `at most ${max}${unit}`;
}

/** The node's own limits in words: enum, lengths, ranges, pattern, list semantics. */
function constraints(node: SchemaNode, each = false): string[] {
  const out: string[] = [];
  const of = each ? 'each ' : '';
  if (node.enum) out.push(`${each ? 'each one' : 'one'} of ${node.enum.map(code).join(', ')}`);
  const len = range(node.minLength, node.maxLength, ' characters');
  if (len) out.push(`${of}${len}`);
  const num = range(node.minimum, node.maximum, '');
  if (num) out.push(`${of}${num}`);
  if (node.pattern !== undefined) out.push(`${of}matching ${code(node.pattern)}`);
  const items = range(node.minItems, node.maxItems, ' items');
  if (items) out.push(items);
  if (node.maxProperties !== undefined) out.push(`at most ${node.maxProperties} entries`);
  const listType = node['x-kubernetes-list-type'];
  if (listType === 'set') out.push('no duplicates');
  if (listType === 'map') out.push(`unique by ${(node['x-kubernetes-list-map-keys'] ?? []).map(code).join(', ')}`);
  if (node.type === 'array' && node.items && node.items.type !== 'object') out.push(...constraints(node.items, true));
  if (node.type === 'object' && typeof node.additionalProperties === 'object')
    out.push(...constraints(node.additionalProperties, true).map((c) => `values: ${c}`));
  return out;
}

/** The CEL rules of a node, by their messages (what the API server answers when one fails). */
function celRules(node: SchemaNode): string[] {
  const rules = [...(node['x-kubernetes-validations'] ?? [])];
  if (node.type === 'array' && node.items) rules.push(...(node.items['x-kubernetes-validations'] ?? []));
  return rules.map((r) => r.message ?? `the expression ${code(r.rule)} holds`);
}

function sentence(text: string): string {
  const t = text.trim();
  if (t === '') return t;
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?:]$/.test(s) ? s : `${s}.`;
}

function fieldRow(field: { path: string; node: SchemaNode; required: boolean }, sectionPaths: ReadonlySet<string>): string {
  const { path: p, node, required } = field;
  const parts = [prose(node.description ?? '')];
  const limits = constraints(node);
  if (limits.length > 0) parts.push(sentence(limits.join('; ')));
  // A section's own rules are listed under its heading instead.
  const own = sectionPaths.has(p) ? p : sectionPaths.has(`${p}[]`) ? `${p}[]` : undefined;
  const rules = own === undefined ? celRules(node) : (node['x-kubernetes-validations'] ?? []).map((r) => r.message ?? r.rule);
  if (rules.length > 0 && own !== p) parts.push(`Checked: ${prose(rules.join('; '))}.`);
  if (own !== undefined) parts.push(`See [below](#${anchor(own)}).`);
  const name = `${code(p)}${required ? ' **required**' : ''}`;
  const dflt = node.default === undefined ? '' : code(node.default);
  return `| ${name} | ${code(typeName(node))} | ${dflt} | ${cell(parts.filter((x) => x !== '').join(' '))} |`;
}

function printerColumns(columns: PrinterColumn[]): string {
  const rows = columns.map(
    (c) => `| ${c.name} | ${cell(prose(c.description ?? ''))}${c.priority ? ' Only with `-o wide`.' : ''} | ${cell(code(c.jsonPath))} |`,
  );
  return ['| column | what it shows | from |', '|---|---|---|', ...rows].join('\n');
}

/** The generated field reference: one section per SECTIONS entry, each with its fields, rules and an example. */
export function renderPolicyFields(crdText: string): string {
  const { schema, columns } = parseCrd(crdText);
  const fields = schemaFields(schema);
  const sectionPaths = new Set(SECTIONS.map((s) => s.path));
  const out: string[] = [];
  out.push(
    '`kubectl get accesspolicies` (short names `ap`, `awp`) shows these columns:',
    '',
    printerColumns(columns),
    '',
    'Sections: ' + SECTIONS.map((s) => `[${s.title}](#${anchor(s.path)})`).join(' · ') + '.',
  );
  for (const s of SECTIONS) {
    const node = nodeAt(schema, s.path);
    const example = SECTION_EXAMPLES[s.path];
    if (example === undefined) throw new Error(`no example for section ${s.path || '(top)'} in tools/gen-policy-reference-examples.ts`);
    out.push('', `<a id="${anchor(s.path)}"></a>`, '', `### ${s.title}`, '');
    if (s.path !== '') out.push(`${code(s.path)} (${code(typeName(node))}): ${prose(node.description ?? '')}`.trim(), '');
    else out.push(prose(node.description ?? ''), '');
    const rules = node['x-kubernetes-validations'] ?? [];
    if (rules.length > 0 && s.path !== '') {
      out.push('Rules the API server checks (CEL; `warden validate` checks the same), as the message it answers with when one fails:', '');
      // Verbatim: this is what the API server (and warden validate) answers when the rule fails.
      for (const r of rules) out.push(`- ${r.message ? prose(r.message) : `the expression ${code(r.rule)} holds`}`);
      out.push('');
    }
    out.push('| field | type | default | description |', '|---|---|---|---|');
    for (const f of fields) if (sectionOf(f.path) === s.path) out.push(fieldRow(f, sectionPaths));
    out.push('', '```yaml', example, '```');
  }
  return out.join('\n');
}

function replaceRegion(doc: string, begin: string, end: string, body: string): string {
  const start = doc.indexOf(begin);
  const stop = doc.indexOf(end);
  if (start < 0 || stop < start) throw new Error(`docs/policy-reference.md lacks the region ${begin} ... ${end}`);
  return `${doc.slice(0, start)}${begin}\n${body}\n${doc.slice(stop)}`;
}

/** The page as `make docs` writes it: `doc` with both generated regions filled in. */
export function renderPolicyReference(doc: string, crdText: string): string {
  const withFields = replaceRegion(doc, FIELDS_BEGIN, FIELDS_END, renderPolicyFields(crdText));
  return replaceRegion(withFields, CLASSES_BEGIN, CLASSES_END, statementClassesMarkdown());
}

/** The repository root, from tools/ (ts-jest, swc) or dist-dev/tools/. */
export function repoRoot(): string {
  const up = path.resolve(__dirname, '..');
  return path.basename(up) === 'dist-dev' ? path.dirname(up) : up;
}

export const CRD_FILE = 'crds/accesspolicy.yaml';
export const DOC_FILE = 'docs/policy-reference.md';

function main(): void {
  const root = repoRoot();
  const docFile = path.join(root, DOC_FILE);
  const before = fs.readFileSync(docFile, 'utf8');
  const after = renderPolicyReference(before, fs.readFileSync(path.join(root, CRD_FILE), 'utf8'));
  if (after === before) {
    console.log(`${DOC_FILE} is up to date`);
    return;
  }
  fs.writeFileSync(docFile, after);
  console.log(`wrote ${DOC_FILE}`);
}

if (require.main === module) main();
