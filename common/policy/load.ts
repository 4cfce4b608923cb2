// AccessPolicy YAML files → validated policies, with line numbers on every error so that
// `warden validate` and a sidecar that refuses to start both point at the offending line.
import fs from 'node:fs/promises';
import { Document, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type YAMLMap, type YAMLSeq } from 'yaml';
import { formatPolicyError, parsePath, type PathSegment, type PolicyError } from './errors';
import { API_VERSION, KIND, validateAccessPolicy } from './schema';
import type { AccessPolicy } from './types';

interface DocumentBase {
  /** File name (or other label) the text came from. */
  source: string;
  /** 0-based position among the file's non-empty documents. */
  index: number;
  /** 1-based line where the document's content starts. */
  line: number;
  /** metadata.name when the document has one. */
  name?: string;
  /** 0-based position in the `items` of a `kind: List` document (parsed with expandLists). */
  item?: number;
}

export type PolicyDocument = DocumentBase &
  (
    | { status: 'valid'; policy: AccessPolicy }
    | { status: 'invalid'; errors: PolicyError[] }
    /** Another kind of object (a Deployment in the same manifest): not ours to judge. */
    | { status: 'skipped'; kind: string }
  );

// Guards against "billion laughs" alias expansion in hostile input.
const MAX_ALIAS_COUNT = 100;

export interface ParseOptions {
  /** Judge each item of a list (`kind: List` as `kubectl get -o yaml` prints it, or any object with an `items` sequence) instead of skipping it. */
  expandLists?: boolean;
}

/** Parses one or more `---`-separated documents and validates each that claims to be an AccessPolicy. */
export function parsePolicyYaml(text: string, sourceName: string, opts: ParseOptions = {}): PolicyDocument[] {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const docs = (Array.isArray(parsed) ? parsed : []).filter((d) => d.errors.length > 0 || !isEmptyDocument(d));
  if (docs.length === 0) {
    return [{ source: sourceName, index: 0, line: 1, status: 'invalid', errors: [{ path: '', message: 'no YAML document found' }] }];
  }
  return docs.flatMap((doc, index) => {
    const items = opts.expandLists ? listItems(doc) : undefined;
    if (items === undefined) return [checkDocument(doc, { source: sourceName, index, line: startLine(doc, lineCounter) }, lineCounter)];
    return items.map((d, item): PolicyDocument => {
      const base = { source: sourceName, index, item, line: startLine(d, lineCounter) };
      // Fail closed: a list nested past the limit is not opened, and not waved through as "another kind" either.
      if (isList(d))
        return {
          ...base,
          status: 'invalid',
          errors: [{ path: '', message: `lists nested more than ${MAX_LIST_DEPTH} deep are not judged`, line: base.line }],
        };
      return checkDocument(d, base, lineCounter);
    });
  });
}

/** Whatever kubectl applies as a list: any object whose `items` is a sequence (its decoder keys on `items`, not on the kind). */
function isList(doc: Document): boolean {
  const c = doc.contents;
  return doc.errors.length === 0 && isMap(c) && isSeq(c.get('items', true));
}

/** Lists nest no deeper than this (a List of Lists is legal; past it, the document is judged as it is). */
const MAX_LIST_DEPTH = 8;

/**
 * The items of a list document (`kind: List`, an `AccessPolicyList`, or any object with an `items`
 * sequence, since kubectl applies each of those items), each as a document of its own: its nodes keep
 * their offsets, so lines stay right. Lists inside lists are opened too, so no AccessPolicy can hide
 * from judgement in a nested list.
 */
function listItems(doc: Document, depth = 0): Document[] | undefined {
  if (depth >= MAX_LIST_DEPTH || !isList(doc)) return undefined;
  const items = (doc.contents as YAMLMap).get('items', true) as unknown as YAMLSeq;
  return items.items.flatMap((node) => {
    const d = new Document();
    d.contents = node as Document['contents'];
    return listItems(d, depth + 1) ?? [d];
  });
}

export async function loadPolicyFile(file: string): Promise<PolicyDocument[]> {
  return parsePolicyYaml(await fs.readFile(file, 'utf8'), file);
}

export class PolicyLoadError extends Error {
  readonly code = 'POLICY_INVALID';
  constructor(
    readonly source: string,
    readonly errors: PolicyError[],
  ) {
    super(`${source}: invalid AccessPolicy:\n${errors.map((e) => `  ${formatPolicyError(e)}`).join('\n')}`);
  }
}

/** Exactly one valid AccessPolicy from parsed documents, or a PolicyLoadError naming every problem. */
export function singlePolicy(docs: PolicyDocument[], source: string): AccessPolicy {
  const errors = docs.flatMap((d) => (d.status === 'invalid' ? d.errors : []));
  if (errors.length > 0) throw new PolicyLoadError(source, errors);
  const policies = docs.flatMap((d) => (d.status === 'valid' ? [d.policy] : []));
  if (policies.length !== 1) {
    throw new PolicyLoadError(source, [{ path: '', message: `expected exactly one AccessPolicy, found ${policies.length}` }]);
  }
  return policies[0];
}

/** For processes that run one policy (the sidecar): exactly one valid AccessPolicy, or a PolicyLoadError. */
export async function loadAccessPolicy(file: string): Promise<AccessPolicy> {
  return singlePolicy(await loadPolicyFile(file), file);
}

function checkDocument(doc: Document, base: DocumentBase, lines: LineCounter): PolicyDocument {
  if (doc.errors.length > 0) {
    return { ...base, status: 'invalid', errors: doc.errors.map((e) => yamlError(e.message, e.linePos?.[0])) };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    return { ...base, status: 'invalid', errors: [{ path: '', message: `cannot read YAML: ${(e as Error).message}`, line: base.line }] };
  }
  const meta = asObject(asObject(value)?.metadata);
  const named = { ...base, name: typeof meta?.name === 'string' ? meta.name : undefined };
  const otherKind = foreignKind(value);
  if (otherKind !== undefined) return { ...named, status: 'skipped', kind: otherKind };
  const result = validateAccessPolicy(value);
  if (result.ok) return { ...named, status: 'valid', policy: result.policy };
  const errors = result.errors.map((e) => ({ ...e, line: lineOf(doc, e, lines) }));
  // Reported in file order (schema errors come before semantic ones otherwise); sort is stable.
  errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  return { ...named, status: 'invalid', errors };
}

/** The kind of a document that is plainly something else; undefined when it is (or tries to be) an AccessPolicy. */
function foreignKind(value: unknown): string | undefined {
  const o = asObject(value);
  const kind = o?.kind;
  const apiVersion = o?.apiVersion;
  if (typeof kind !== 'string' || kind === KIND) return undefined;
  if (typeof apiVersion === 'string' && apiVersion.split('/')[0] === API_VERSION.split('/')[0]) return undefined;
  return kind;
}

function yamlError(message: string, pos: { line: number; col: number } | undefined): PolicyError {
  // yaml's pretty message repeats the position and appends a source excerpt; keep the sentence.
  const sentence = message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
  return { path: '', message: `YAML syntax error${where}: ${sentence}`, line: pos?.line };
}

function isEmptyDocument(doc: Document): boolean {
  const c = doc.contents;
  return c === null || (isScalar(c) && (c.value === null || c.value === undefined));
}

function startLine(doc: Document, lines: LineCounter): number {
  const offset = doc.contents?.range?.[0] ?? doc.range?.[0] ?? 0;
  return lines.linePos(offset).line;
}

/** Line of the deepest YAML node on the error's path (the field itself for unknown fields). */
function lineOf(doc: Document, e: PolicyError, lines: LineCounter): number | undefined {
  const segments: PathSegment[] = parsePath(e.path);
  if (e.field !== undefined) segments.push(e.field);
  let node: unknown = doc.contents;
  let offset = doc.contents?.range?.[0] ?? undefined;
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) break;
      offset = isScalar(pair.key) ? (pair.key.range?.[0] ?? offset) : offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      const item = node.items[seg];
      offset = (isScalar(item) || isMap(item) || isSeq(item) ? item.range?.[0] : undefined) ?? offset;
      node = item;
    } else break;
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
