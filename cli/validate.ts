// `warden validate FILE|DIR|-...`: offline check of AccessPolicy YAML with the CRD's own schema,
// multi-document files and `kind: List` items included.
import fs from 'node:fs/promises';
import path from 'node:path';
import { displaySafe } from '../common/display-escape';
import { formatPolicyError } from '../common/policy/errors';
import { parsePolicyYaml, type PolicyDocument } from '../common/policy/load';
import type { AccessPolicy } from '../common/policy/types';
import { readProcessStdin, type CliIo } from './context';
import { cannotRead } from './fs-errors';
import { renderData, type OutputFormat } from './output';
import { identityWarnings } from '../common/identity/spec';

export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_UNREADABLE = 2;

export interface ValidateOptions {
  output: OutputFormat;
  /** An input with no AccessPolicy in it is not an error. */
  allowEmpty?: boolean;
}

/** One result per document (json and yaml print these; table prints one line each). */
export interface ValidateResult {
  source: string;
  /** 1-based document in the file; for the items of a `kind: List`, also the 1-based item. */
  document?: number;
  item?: number;
  line?: number;
  kind?: string;
  name?: string;
  status: 'valid' | 'invalid' | 'skipped' | 'unreadable' | 'empty';
  errors: string[];
  warnings: string[];
}

/** Exit code: 0 every document valid, 1 some document invalid or an input without an AccessPolicy, 2 unreadable input. */
export async function runValidate(inputs: string[], o: ValidateOptions, io: CliIo): Promise<number> {
  const results: ValidateResult[] = [];
  for (const arg of inputs) results.push(...(await validateInput(arg, io, o.allowEmpty === true)));
  if (o.output === 'table') {
    for (const r of results) {
      const { out, err } = tableLines(r);
      // File names, policy names and values come from the input: shown escaped, as -o json|yaml do.
      for (const line of out) io.stdout(displaySafe(line));
      for (const line of err) io.stderr(displaySafe(line));
    }
  } else {
    io.stdout(renderData(results, o.output));
  }
  return Math.max(EXIT_VALID, ...results.map(exitCodeOf));
}

function exitCodeOf(r: ValidateResult): number {
  if (r.status === 'unreadable') return EXIT_UNREADABLE;
  return r.status === 'invalid' || r.status === 'empty' ? EXIT_INVALID : EXIT_VALID;
}

/** The results for one argument: a file, every *.yaml / *.yml of a directory, or standard input. */
async function validateInput(arg: string, io: CliIo, allowEmpty: boolean): Promise<ValidateResult[]> {
  const unreadable = (source: string, e: unknown): ValidateResult[] => [
    { source, status: 'unreadable', errors: [cannotRead(source, e)], warnings: [] },
  ];
  let files: string[];
  if (arg === '-') {
    let text: string;
    try {
      text = await (io.readStdin ?? readProcessStdin)();
    } catch (e) {
      return unreadable(STDIN, e);
    }
    return withEmptyCheck(STDIN, validateText(text, STDIN), allowEmpty, 'no AccessPolicy found');
  }
  try {
    const stat = await fs.stat(arg);
    files = stat.isDirectory()
      ? (await fs.readdir(arg))
          // what kubectl apply -f DIR reads (JSON is YAML to the parser)
          .filter((n) => /\.(ya?ml|json)$/i.test(n))
          .sort()
          .map((n) => path.join(arg, n))
      : [arg];
  } catch (e) {
    return unreadable(arg, e);
  }
  if (files.length === 0) return withEmptyCheck(arg, [], allowEmpty, 'directory has no .yaml, .yml or .json files');
  const out: ValidateResult[] = [];
  for (const file of files) {
    try {
      out.push(...validateText(await fs.readFile(file, 'utf8'), file));
    } catch (e) {
      out.push(...unreadable(file, e));
    }
  }
  return withEmptyCheck(arg, out, allowEmpty, 'no AccessPolicy found');
}

const STDIN = '<stdin>';

/** An input (a file, a directory, stdin) that holds no AccessPolicy at all is most likely the wrong file. */
function withEmptyCheck(source: string, results: ValidateResult[], allowEmpty: boolean, why: string): ValidateResult[] {
  if (allowEmpty || results.some((r) => r.status === 'valid' || r.status === 'invalid' || r.status === 'unreadable')) return results;
  return [
    ...results,
    {
      source,
      status: 'empty',
      errors: [
        `${why}${results.length > 0 ? ` (only ${[...new Set(results.map((r) => r.kind))].join(', ')})` : ''}; pass --allow-empty if that is expected`,
      ],
      warnings: [],
    },
  ];
}

function validateText(text: string, source: string): ValidateResult[] {
  return parsePolicyYaml(text, source, { expandLists: true }).map(toResult);
}

function toResult(doc: PolicyDocument): ValidateResult {
  const base = {
    source: doc.source,
    document: doc.index + 1,
    ...(doc.item !== undefined ? { item: doc.item + 1 } : {}),
    line: doc.line,
    ...(doc.name !== undefined ? { name: doc.name } : {}),
  };
  switch (doc.status) {
    case 'valid':
      return { ...base, kind: 'AccessPolicy', status: 'valid', errors: [], warnings: warnings(doc.policy) };
    case 'skipped':
      return { ...base, kind: doc.kind, status: 'skipped', errors: [], warnings: [] };
    case 'invalid':
      return { ...base, kind: 'AccessPolicy', status: 'invalid', errors: doc.errors.map(formatPolicyError), warnings: [] };
  }
}

/**
 * One line per document or per error, prefixed with the source, so the output greps and diffs well:
 * what passed on stdout, errors and warnings on stderr.
 */
function tableLines(r: ValidateResult): { out: string[]; err: string[] } {
  const where = r.item !== undefined ? `document ${r.document} item ${r.item}` : `document ${r.document}`;
  const label = r.name !== undefined ? `AccessPolicy ${r.name}` : where;
  switch (r.status) {
    case 'valid':
      return { out: [`${r.source}: ${label} is valid\n`], err: r.warnings.map((w) => `${r.source}: ${label}: warning: ${w}\n`) };
    case 'skipped':
      return { out: [`${r.source}: skipped ${r.kind}${r.name !== undefined ? ` ${r.name}` : ''} (not an AccessPolicy)\n`], err: [] };
    case 'invalid':
      return { out: [], err: r.errors.map((e) => `${r.source}: ${label}: ${e}\n`) };
    case 'unreadable':
      return { out: [], err: r.errors.map((e) => `${e}\n`) };
    case 'empty':
      return { out: [], err: r.errors.map((e) => `${r.source}: ${e}\n`) };
  }
}

/** Valid but risky settings: reported, not failed (the exit code stays 0). */
function warnings(policy: AccessPolicy): string[] {
  const out: string[] = [];
  for (const [i, t] of (policy.spec.targets ?? []).entries()) {
    if (t.postgres?.unparseable === 'allow') {
      out.push(
        `spec.targets[${i}].postgres.unparseable: allow (target "${t.name}") forwards statements the sidecar's SQL parser rejects, unchecked by any rule; the server may accept them (deeper nesting, newer grammar)`,
      );
    }
    if (t.mcp?.pinToolDefinitions === false) {
      out.push(
        `spec.targets[${i}].mcp.pinToolDefinitions: false (target "${t.name}") lets the server change a tool's description or schema after the agent first saw it, unnoticed`,
      );
    }
  }
  out.push(...mcpRuleWarnings(policy));
  out.push(...identityWarnings(policy.spec.identity));
  return out;
}

/**
 * A deny or hold rule on an MCP target with no methods, tools or arguments matches every message,
 * initialize and tools/list included: the callers it applies to cannot even connect. Only a single
 * tools/call can wait for approval: a hold rule naming other methods refuses those messages.
 */
function mcpRuleWarnings(policy: AccessPolicy): string[] {
  const mcpTargets = new Set(policy.spec.targets.filter((t) => t.mcp).map((t) => t.name));
  const out: string[] = [];
  for (const [i, rule] of (policy.spec.rules ?? []).entries()) {
    const m = rule.match;
    if (rule.action === 'allow' || m.sql || m.http) continue;
    const onMcp = m.mcp !== undefined || (m.target !== undefined && mcpTargets.has(m.target));
    if (!onMcp || m.mcp?.tools || m.mcp?.arguments) continue;
    const others = m.mcp?.methods?.filter((x) => x !== 'tools/call');
    if (others !== undefined) {
      if (rule.action === 'hold' && others.length > 0) {
        out.push(
          `spec.rules[${i}].match.mcp.methods (hold rule "${rule.name}"): only tools/call can wait for approval; ${others.join(', ')} will be refused instead`,
        );
      }
      continue;
    }
    const where = m.target !== undefined ? `"${m.target}"` : 'every mcp target';
    out.push(
      `spec.rules[${i}] (${rule.action} rule "${rule.name}") matches every MCP message on ${where}, initialize and tools/list included: the callers it applies to cannot connect; name mcp.tools or mcp.methods to narrow it`,
    );
  }
  return out;
}
