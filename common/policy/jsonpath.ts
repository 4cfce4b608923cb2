// Selects the values a parsed JSONPath (the subset in syntax.ts) points at in a JSON document.
import type { JsonPathSegment } from './syntax';

const MAX_DEPTH = 64;

export function selectJsonPath(doc: unknown, segments: readonly JsonPathSegment[]): unknown[] {
  let current: unknown[] = [doc];
  for (const seg of segments) {
    const next: unknown[] = [];
    for (const node of current) {
      if (seg.descendant) collectDescendants(node, seg, next, 0);
      else step(node, seg, next);
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

function step(node: unknown, seg: JsonPathSegment, out: unknown[]): void {
  if (node === null || typeof node !== 'object') return;
  if (seg.type === 'wildcard') {
    out.push(...(Array.isArray(node) ? node : Object.values(node)));
  } else if (seg.type === 'index') {
    if (Array.isArray(node) && seg.index < node.length) out.push(node[seg.index]);
  } else if (!Array.isArray(node) && Object.prototype.hasOwnProperty.call(node, seg.name)) {
    out.push((node as Record<string, unknown>)[seg.name]);
  }
}

/** `..x`: x applied at this node and every node below it. */
function collectDescendants(node: unknown, seg: JsonPathSegment, out: unknown[], depth: number): void {
  if (node === null || typeof node !== 'object' || depth > MAX_DEPTH) return;
  step(node, seg, out);
  for (const child of Array.isArray(node) ? node : Object.values(node)) collectDescendants(child, seg, out, depth + 1);
}
