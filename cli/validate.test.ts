import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { findRepoRoot } from '../common/policy/schema';
import { runCli } from './run';

const root = findRepoRoot();
const example = path.join(root, 'examples/policy.yaml');
const invalidExample = path.join(root, 'examples/invalid-policy.yaml');

async function run(args: string[], stdin?: string): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io = { stdout: (s: string) => void stdout.push(s), stderr: (s: string) => void stderr.push(s), readStdin: async () => stdin ?? '' };
  const code = await runCli(['validate', ...args], io, { env: {} });
  return { code, stdout, stderr };
}

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-validate-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

test('the example policy is valid: exit 0, one line on stdout', async () => {
  expect(await run([example])).toEqual({ code: 0, stdout: [`${example}: AccessPolicy support-agent is valid\n`], stderr: [] });
});

test('the invalid example: exit 1, one line per mistake naming the field', async () => {
  const { code, stdout, stderr } = await run([invalidExample]);
  expect(code).toBe(1);
  expect(stdout).toEqual([]);
  const prefix = `${invalidExample}: AccessPolicy broken-agent: `;
  for (const line of stderr) {
    expect(line.startsWith(prefix)).toBe(true);
    expect(line.endsWith('\n')).toBe(true);
  }
  const lines = stderr.map((l) => l.slice(prefix.length).trimEnd());
  expect(lines).toEqual(
    expect.arrayContaining([
      'spec.defaultAction: must be one of: allow, deny (got "block") (line 10)',
      'spec.targets[0].postgres: unknown field "hots" (did you mean "host"?) (line 14)',
      "spec.targets[0].postgres.listenPort: port 15000 is used by the sidecar's admin API; choose another listenPort (line 17)",
      'spec.targets[1]: sets both postgres and http; a target is exactly one of postgres, http or mcp (split it into separate targets) (line 18)',
      'spec.rules[1].name: duplicate rule name "no-ddl" (also used by spec.rules[0]) (line 40)',
      'spec.rules[1].match.target: target "payments" is not defined in spec.targets (defined: crm, openai, crm-tools) (line 43)',
      'spec.rules[2]: required field "approval" is missing: a rule with action "hold" needs someone to approve (line 46)',
      'spec.masking[0].targets[0]: target "billing" is not defined in spec.targets (defined: crm, openai, crm-tools) (line 73)',
    ]),
  );
  expect(lines.find((l) => l.startsWith('spec.rules[0].match.sql.statements[1]: '))).toMatch(
    /: must be one of: SELECT, INSERT, .* \(got "drop-table"\) \(line 39\)$/,
  );
  // reported in file order
  const lineNumbers = lines.map((l) => Number(/\(line (\d+)\)$/.exec(l)?.[1]));
  expect(lineNumbers).toEqual([...lineNumbers].sort((a, b) => a - b));
});

test('a YAML syntax error names the line', async () => {
  const file = write('broken.yaml', 'apiVersion: agentwarden.io/v1alpha1\nkind: AccessPolicy\nmetadata:\n  name: x\n spec: {}\n');
  const { code, stderr } = await run([file]);
  expect(code).toBe(1);
  expect(stderr[0]).toMatch(
    new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: document 1: YAML syntax error at line 5, column \\d+: `),
  );
});

test('several documents and files: each reported, worst exit code wins', async () => {
  const good = fs.readFileSync(example, 'utf8');
  const multi = write(
    'multi.yaml',
    `${good}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n---\n${good.replace('name: support-agent', 'name: other').replace('strategy: last4', 'strategy: blur')}`,
  );
  const { code, stdout, stderr } = await run([example, multi]);
  expect(code).toBe(1);
  expect(stdout).toEqual([
    `${example}: AccessPolicy support-agent is valid\n`,
    `${multi}: AccessPolicy support-agent is valid\n`,
    `${multi}: skipped ConfigMap settings (not an AccessPolicy)\n`,
  ]);
  expect(stderr).toEqual([
    expect.stringMatching(
      new RegExp(
        `^.*multi\\.yaml: AccessPolicy other: spec\\.masking\\[0\\]\\.strategy: must be one of: redact, last4, hash \\(got "blur"\\) \\(line \\d+\\)\\n$`,
      ),
    ),
  ]);
});

test('a directory is expanded to its YAML and JSON files, as kubectl apply -f DIR reads them', async () => {
  fs.copyFileSync(example, path.join(dir, 'a.yaml'));
  fs.copyFileSync(example, path.join(dir, 'b.yml'));
  write('notes.txt', 'not yaml');
  const { code, stdout } = await run([dir]);
  expect(code).toBe(0);
  expect(stdout).toEqual([
    `${path.join(dir, 'a.yaml')}: AccessPolicy support-agent is valid\n`,
    `${path.join(dir, 'b.yml')}: AccessPolicy support-agent is valid\n`,
  ]);
  const json = write(
    'c.json',
    JSON.stringify({ apiVersion: 'agentwarden.io/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'j' }, spec: { targets: 'x' } }),
  );
  const r = await run([dir]);
  expect(r.code).toBe(1);
  expect(r.stderr.join('')).toContain(`${json}: AccessPolicy j: spec.targets`);
});

test('unreadable files exit 2, and the other files are still checked', async () => {
  const missing = path.join(dir, 'missing.yaml');
  const { code, stdout, stderr } = await run([missing, invalidExample, example]);
  expect(code).toBe(2);
  expect(stderr[0]).toBe(`cannot read ${missing}: no such file\n`);
  expect(stderr.length).toBeGreaterThan(1);
  expect(stdout).toEqual([`${example}: AccessPolicy support-agent is valid\n`]);
});

test('an empty directory or file', async () => {
  expect(await run([dir])).toEqual({
    code: 1,
    stdout: [],
    stderr: [`${dir}: directory has no .yaml, .yml or .json files; pass --allow-empty if that is expected\n`],
  });
  expect((await run([dir, '--allow-empty'])).code).toBe(0);
  const empty = write('empty.yaml', '');
  expect(await run([empty])).toEqual({ code: 1, stdout: [], stderr: [`${empty}: document 1: no YAML document found\n`] });
});

test('usage errors exit 2 with one line naming --help', async () => {
  const none = await run([]);
  expect(none).toEqual({
    code: 2,
    stdout: [],
    stderr: ["warden validate: missing required argument 'input'; see 'warden validate --help'\n"],
  });
  const option = await run(['--strict', example]);
  expect(option).toEqual({ code: 2, stdout: [], stderr: ["warden validate: unknown option '--strict'; see 'warden validate --help'\n"] });
  const format = await run(['-o', 'xml', example]);
  expect(format.code).toBe(2);
  expect(format.stderr.join('')).toContain('Allowed choices are table, json, yaml');
});

test('- reads standard input', async () => {
  const text = fs.readFileSync(example, 'utf8');
  expect(await run(['-'], text)).toEqual({ code: 0, stdout: ['<stdin>: AccessPolicy support-agent is valid\n'], stderr: [] });
  const bad = await run(['-'], text.replace('strategy: last4', 'strategy: blur'));
  expect(bad.code).toBe(1);
  expect(bad.stderr[0]).toMatch(/^<stdin>: AccessPolicy support-agent: spec\.masking\[0\]\.strategy: must be one of/);
});

/** The example policy as an item of a v1 List, indented as kubectl get -o yaml prints it. */
function asListItem(text: string, name: string): string {
  const body = text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n')
    .trim()
    .replace('name: support-agent', `name: ${name}`);
  return `  - ${body.replace(/\n/g, '\n    ')}\n`;
}

test('a kind: List (kubectl get -o yaml): every item judged, with lines in the file', async () => {
  const text = fs.readFileSync(example, 'utf8');
  const list = write(
    'list.yaml',
    `apiVersion: v1\nkind: List\nitems:\n${asListItem(text, 'first')}${asListItem(text.replace('strategy: last4', 'strategy: blur'), 'second')}  - apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: settings}\nmetadata: {resourceVersion: ""}\n`,
  );
  const r = await run([list]);
  expect(r.code).toBe(1);
  expect(r.stdout).toEqual([`${list}: AccessPolicy first is valid\n`, `${list}: skipped ConfigMap settings (not an AccessPolicy)\n`]);
  expect(r.stderr).toHaveLength(1);
  const line = Number(/\(line (\d+)\)$/.exec(r.stderr[0].trimEnd())?.[1]);
  expect(r.stderr[0]).toContain(`${list}: AccessPolicy second: spec.masking[0].strategy: must be one of`);
  // the line is the one in the List file, inside the second item
  expect(fs.readFileSync(list, 'utf8').split('\n')[line - 1]).toContain('strategy: blur');
  const json = await run([list, '-o', 'json']);
  const results = JSON.parse(json.stdout.join('')) as Array<{ item?: number; status: string; name?: string }>;
  expect(results.map((x) => [x.item, x.status, x.name])).toEqual([
    [1, 'valid', 'first'],
    [2, 'invalid', 'second'],
    [3, 'skipped', 'settings'],
  ]);
});

test('a List inside a List, an AccessPolicyList or any object with items cannot hide an invalid policy', async () => {
  const text = fs.readFileSync(example, 'utf8');
  const good = asListItem(text, 'good')
    .replace(/\n {2}/g, '\n      ')
    .replace(/^ {2}-/, '      -');
  const bad = asListItem(text.replace('strategy: last4', 'strategy: blur'), 'hidden')
    .replace(/\n {2}/g, '\n      ')
    .replace(/^ {2}-/, '      -');
  const nested = write('nested.yaml', `apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: List\n    items:\n${good}${bad}`);
  const r = await run([nested]);
  expect(r.code).toBe(1);
  expect(r.stdout).toEqual([`${nested}: AccessPolicy good is valid\n`]);
  expect(r.stderr.join('')).toContain(`${nested}: AccessPolicy hidden: spec.masking[0].strategy: must be one of`);
  // nested past the limit: refused, not skipped as "another kind"
  let deep = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n';
  for (let i = 0; i < 10; i++) deep = `apiVersion: v1\nkind: List\nitems:\n  - ${deep.trim().replace(/\n/g, '\n    ')}\n`;
  const d = await run(['-'], deep);
  expect(d.code).toBe(1);
  expect(d.stderr).toEqual(['<stdin>: document 1 item 1: lists nested more than 8 deep are not judged (line 25)\n']);
  const typed = write(
    'typed.yaml',
    `apiVersion: agentwarden.io/v1alpha1\nkind: AccessPolicyList\nitems:\n${asListItem(text.replace('strategy: last4', 'strategy: blur'), 'hidden')}`,
  );
  const t = await run([typed]);
  expect(t.code).toBe(1);
  expect(t.stderr.join('')).toContain(`${typed}: AccessPolicy hidden: spec.masking[0].strategy: must be one of`);
  // kubectl applies the items of any object with an items array, whatever its kind (RT14-08)
  const disguised = write(
    'disguised.yaml',
    `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: innocent}\nitems:\n${asListItem(text.replace('strategy: last4', 'strategy: blur'), 'hidden')}`,
  );
  const c = await run([example, disguised]);
  expect(c.code).toBe(1);
  expect(c.stderr.join('')).toContain(`${disguised}: AccessPolicy hidden: spec.masking[0].strategy: must be one of`);
});

test('an input with no AccessPolicy fails (exit 1) unless --allow-empty; each input counts on its own', async () => {
  const other = write('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n');
  expect(await run([other])).toEqual({
    code: 1,
    stdout: [`${other}: skipped ConfigMap settings (not an AccessPolicy)\n`],
    stderr: [`${other}: no AccessPolicy found (only ConfigMap); pass --allow-empty if that is expected\n`],
  });
  expect((await run([example, other])).code).toBe(1);
  expect(await run([other, '--allow-empty'])).toEqual({
    code: 0,
    stdout: [`${other}: skipped ConfigMap settings (not an AccessPolicy)\n`],
    stderr: [],
  });
  const stdin = await run(['-'], 'apiVersion: v1\nkind: List\nitems: []\n');
  expect(stdin.code).toBe(1);
  expect(stdin.stderr).toEqual(['<stdin>: no AccessPolicy found; pass --allow-empty if that is expected\n']);
});

test('-o json and -o yaml carry the same results, whatever the exit code', async () => {
  const missing = path.join(dir, 'missing.yaml');
  const json = await run(['-o', 'json', example, invalidExample, missing]);
  expect(json.code).toBe(2);
  expect(json.stderr).toEqual([]);
  const results = JSON.parse(json.stdout.join('')) as Array<{ source: string; status: string; errors: string[] }>;
  expect(results.map((r) => [r.source, r.status])).toEqual([
    [example, 'valid'],
    [invalidExample, 'invalid'],
    [missing, 'unreadable'],
  ]);
  expect(results[1].errors).toContain('spec.defaultAction: must be one of: allow, deny (got "block") (line 10)');
  expect(results[2].errors).toEqual([`cannot read ${missing}: no such file`]);
  const yaml = await run(['-o', 'yaml', example, invalidExample, missing]);
  expect(YAML.parse(yaml.stdout.join(''))).toEqual(results);
});

test('unparseable: allow on a postgres target is valid but warned about (exit 0); maxStatementBytes is checked', async () => {
  const doc = (extra: string): string => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: lenient
spec:
  targets:
    - name: crm
      postgres:
        host: db
        database: crm
        credentialsSecret: crm-db
        listenPort: 15432
${extra}`;
  const lenient = write('lenient.yaml', doc('        unparseable: allow\n        maxStatementBytes: 65536\n'));
  const r = await run([lenient]);
  expect(r.code).toBe(0);
  expect(r.stdout).toEqual([`${lenient}: AccessPolicy lenient is valid\n`]);
  expect(r.stderr).toEqual([
    `${lenient}: AccessPolicy lenient: warning: spec.targets[0].postgres.unparseable: allow (target "crm") forwards statements the sidecar's SQL parser rejects, unchecked by any rule; the server may accept them (deeper nesting, newer grammar)\n`,
  ]);
  const strict = write('strict.yaml', doc('        unparseable: deny\n'));
  expect(await run([strict])).toEqual({ code: 0, stdout: [`${strict}: AccessPolicy lenient is valid\n`], stderr: [] });
  const tiny = write('tiny.yaml', doc('        maxStatementBytes: 10\n'));
  const t = await run([tiny]);
  expect(t.code).toBe(1);
  expect(t.stderr[0]).toContain('spec.targets[0].postgres.maxStatementBytes');
});

test('MCP: the example is valid; invalid match.mcp and mcp targets are named by field; risky settings are warned about', async () => {
  const mcpExample = path.join(root, 'examples/mcp-policy.yaml');
  expect(await run([mcpExample])).toEqual({ code: 0, stdout: [`${mcpExample}: AccessPolicy crm-agent is valid\n`], stderr: [] });
  const { stderr } = await run([invalidExample]);
  const lines = stderr.map((l) => l.slice(`${invalidExample}: AccessPolicy broken-agent: `.length).trimEnd());
  expect(lines).toEqual(
    expect.arrayContaining([
      'spec.targets[2].mcp.auth: auth needs credentialsSecret: the credential it attaches comes from that Secret (line 29)',
      'spec.targets[2].mcp.pins[0].fingerprint: must be a tool fingerprint: sha256: and 64 lower-case hex digits, as the sidecar reports it (got "3f2a9c") (line 32)',
      'spec.rules[4].match.mcp: mcp matches apply only to mcp targets, but "crm" is a postgres target (line 65)',
      'spec.rules[4].match.mcp.tools: tools only match tools/call, but methods does not include tools/call (resources/read): the rule would never match; add tools/call to methods or drop tools (line 67)',
    ]),
  );
  const risky = write(
    'risky.yaml',
    `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata:
  name: risky
spec:
  targets:
    - name: tools
      mcp:
        url: http://127.0.0.1:9000/mcp
        pinToolDefinitions: false
  rules:
    - name: sre-only
      action: allow
      match: {target: tools, groups: [sre]}
    - name: closed
      action: deny
      match: {target: tools}
    - name: held
      action: hold
      approval: {approvers: {groups: [sre]}}
      match: {mcp: {}}
    - name: narrow
      action: deny
      match: {mcp: {tools: [drop_*]}}
    - name: held-reads
      action: hold
      approval: {approvers: {groups: [sre]}}
      match: {mcp: {methods: [tools/call, resources/read]}}
`,
  );
  const r = await run([risky]);
  expect(r.code).toBe(0);
  expect(r.stderr.map((l) => l.slice(`${risky}: AccessPolicy risky: warning: `.length).trimEnd())).toEqual([
    'spec.targets[0].mcp.pinToolDefinitions: false (target "tools") lets the server change a tool\'s description or schema after the agent first saw it, unnoticed',
    'spec.rules[1] (deny rule "closed") matches every MCP message on "tools", initialize and tools/list included: the callers it applies to cannot connect; name mcp.tools or mcp.methods to narrow it',
    'spec.rules[2] (hold rule "held") matches every MCP message on every mcp target, initialize and tools/list included: the callers it applies to cannot connect; name mcp.tools or mcp.methods to narrow it',
    'spec.rules[4].match.mcp.methods (hold rule "held-reads"): only tools/call can wait for approval; resources/read will be refused instead',
  ]);
});
