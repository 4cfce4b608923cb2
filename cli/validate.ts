// `warden validate FILE...`: offline check of AccessPolicy YAML with the CRD's own schema.
// One line per document or per error, prefixed with the file, so the output greps and diffs well.
import fs from 'node:fs/promises';
import path from 'node:path';
import { formatPolicyError } from '../common/policy/errors';
import { parsePolicyYaml, type PolicyDocument } from '../common/policy/load';
import type { AccessPolicy } from '../common/policy/types';

export interface ValidateOutput {
  /** Receives complete lines, each ending in "\n" (pass `(s) => process.stdout.write(s)`). */
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_UNREADABLE = 2;

const USAGE = 'usage: warden validate FILE|DIR...   (a DIR is searched for *.yaml and *.yml, not recursively)';

/** Exit code: 0 every document valid, 1 some document invalid, 2 usage error or unreadable file. */
export async function runValidate(files: string[], out: ValidateOutput): Promise<number> {
  const bad = files.find((f) => f.startsWith('-'));
  if (files.length === 0 || bad !== undefined) {
    out.stderr(`${bad !== undefined ? `warden validate: unknown option ${bad}\n` : ''}${USAGE}\n`);
    return EXIT_UNREADABLE;
  }
  let code = EXIT_VALID;
  for (const arg of files) {
    const expanded = await expand(arg);
    if (typeof expanded === 'string') {
      out.stderr(`${arg}: ${expanded}\n`);
      code = EXIT_UNREADABLE;
      continue;
    }
    for (const file of expanded) {
      const fileCode = await validateFile(file, out);
      code = Math.max(code, fileCode);
    }
  }
  return code;
}

/** The files to check for one argument, or why there are none. */
async function expand(arg: string): Promise<string[] | string> {
  try {
    const stat = await fs.stat(arg);
    if (!stat.isDirectory()) return [arg];
    const names = (await fs.readdir(arg)).filter((n) => /\.ya?ml$/i.test(n)).sort();
    return names.length > 0 ? names.map((n) => path.join(arg, n)) : 'directory has no .yaml or .yml files';
  } catch (e) {
    return `cannot read: ${describeFsError(e)}`;
  }
}

async function validateFile(file: string, out: ValidateOutput): Promise<number> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    out.stderr(`${file}: cannot read: ${describeFsError(e)}\n`);
    return EXIT_UNREADABLE;
  }
  let code = EXIT_VALID;
  for (const doc of parsePolicyYaml(text, file)) {
    report(doc, out);
    if (doc.status === 'invalid') code = EXIT_INVALID;
  }
  return code;
}

function report(doc: PolicyDocument, out: ValidateOutput): void {
  const label = doc.name !== undefined ? `AccessPolicy ${doc.name}` : `document ${doc.index + 1}`;
  switch (doc.status) {
    case 'valid':
      out.stdout(`${doc.source}: ${label} is valid\n`);
      for (const w of warnings(doc.policy)) out.stderr(`${doc.source}: ${label}: warning: ${w}\n`);
      return;
    case 'skipped':
      out.stdout(`${doc.source}: skipped ${doc.kind}${doc.name !== undefined ? ` ${doc.name}` : ''} (not an AccessPolicy)\n`);
      return;
    case 'invalid':
      for (const e of doc.errors) out.stderr(`${doc.source}: ${label}: ${formatPolicyError(e)}\n`);
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

function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return (e as Error).message;
}
