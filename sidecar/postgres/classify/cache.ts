// A classifier with two bounded LRU caches in front of the parser, because the proxy classifies
// every statement it forwards:
//  1. exact text -> result. Always sound (classification is a pure function of the text); serves
//     repeated and prepared statements without touching the parser.
//  2. normalized text -> result. libpg-query's normalize (the real parser, constants replaced by
//     $n, ~2x cheaper than a full parse) maps `... WHERE aid = 1` and `... WHERE aid = 2` to one
//     key. Sound only for results that do not depend on constant values, so results flagged
//     constSensitive (DO and function bodies, query_to_xml('...'), 'x'::regclass) are never stored
//     here; the flag is raised by the *place* a constant would be read, not by finding one there,
//     so every text sharing a normalized key agrees on it. Parse errors are never stored here.
// Results are frozen: callers share them, and a mutation must not poison later decisions.
import { normalizeSync } from 'libpg-query';
import type { SqlStatementInfo } from '../../../common/policy/types';
import { assertClassifierReady, classifyDetailed, cString, type ClassifyResult } from './classify';
import { fastLiteralKey } from './fast-key';

export interface ClassifierOptions {
  /** Entries per cache (exact and normalized). Default 10000. */
  maxEntries?: number;
  /** Texts longer than this (in characters) are classified but not cached. Default 16384. */
  maxTextLength?: number;
}

export interface ClassifierStats {
  exactHits: number;
  normalizedHits: number;
  misses: number;
  exactSize: number;
  normalizedSize: number;
}

export interface Classifier {
  classify(text: string): ClassifyResult;
  stats(): ClassifierStats;
}

export function createClassifier(options: ClassifierOptions = {}): Classifier {
  const maxEntries = options.maxEntries ?? 10_000;
  const maxTextLength = options.maxTextLength ?? 16_384;
  const exact = new Lru<ClassifyResult>(maxEntries);
  const normalized = new Lru<ClassifyResult>(maxEntries);
  // Keyed by fastLiteralKey: skips the parser round trip for plain statements with new literals.
  const shaped = new Lru<ClassifyResult>(maxEntries);
  const counts = { exactHits: 0, normalizedHits: 0, misses: 0 };
  const cacheable = (text: string): boolean => maxEntries > 0 && text.length <= maxTextLength;

  function classify(text: string): ClassifyResult {
    assertClassifierReady();
    const known = exact.get(text);
    if (known !== undefined) {
      counts.exactHits++;
      return known;
    }
    const fast = cacheable(text) ? fastLiteralKey(text) : undefined;
    if (fast !== undefined) {
      const hit = shaped.get(fast);
      if (hit !== undefined) {
        counts.normalizedHits++;
        return hit;
      }
    }
    const key = cacheable(text) ? normalizedKey(text) : undefined;
    if (key !== undefined) {
      const hit = normalized.get(key);
      if (hit !== undefined) {
        counts.normalizedHits++;
        if (fast !== undefined) shaped.set(fast, hit);
        // Not stored under the exact text: varying literals would churn the exact cache for nothing.
        return hit;
      }
    }
    counts.misses++;
    const detailed = classifyDetailed(text);
    const result = freezeResult(detailed.result);
    if (key !== undefined && 'statements' in result && !detailed.constSensitive) {
      normalized.set(key, result);
      if (fast !== undefined) shaped.set(fast, result);
    }
    if (cacheable(text)) exact.set(text, result);
    return result;
  }

  return {
    classify,
    stats: () => ({ ...counts, exactSize: exact.size, normalizedSize: normalized.size }),
  };
}

/**
 * The normalized text, or undefined when normalization failed. libpg-query returns some parser
 * errors ("unterminated quoted string ...") as if they were the normalized text instead of
 * throwing; a genuine normalization equals the input up to its first `$` (constants are replaced
 * in place, left to right, and no statement starts with a constant), an error message does not.
 */
export function normalizedKey(query: string): string | undefined {
  const text = cString(query);
  let norm: string;
  try {
    norm = normalizeSync(text);
  } catch {
    return undefined;
  }
  const firstParam = norm.indexOf('$');
  if (firstParam < 0) return norm === text ? norm : undefined;
  return text.startsWith(norm.slice(0, firstParam)) ? norm : undefined;
}

function freezeResult(result: ClassifyResult): ClassifyResult {
  if ('statements' in result) {
    for (const s of result.statements) freezeInfo(s);
    Object.freeze(result.statements);
  }
  return Object.freeze(result);
}

function freezeInfo(s: SqlStatementInfo): void {
  if (s.preparedBody !== undefined) freezeInfo(s.preparedBody);
  Object.freeze(s.kinds);
  Object.freeze(s.tables);
  Object.freeze(s.functions);
  Object.freeze(s.columns);
  Object.freeze(s);
}

/** Bounded map evicting the oldest insertion first (a Map iterates in insertion order). */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    // No recency refresh (delete + re-insert per hit costs more than an occasional re-parse of a
    // hot statement that aged out): eviction is insertion order.
    return this.map.get(key);
  }

  set(key: string, value: V): void {
    if (this.max <= 0) return;
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
  }
}
