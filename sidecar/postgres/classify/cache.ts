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
import { assertClassifierReady, classifyDetailed, cString, noteParserFailure, type ClassifyResult } from './classify';
import { fastLiteralKey } from './fast-key';
import { ParserFailure, rethrowFailure } from './failure';
import { MAX_NESTING_DEPTH, nestingDepth } from './prescan';

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

/** What a classification adds to the caches beside its result. */
export interface CacheHints {
  /** The result read a constant's value (see DetailedClassification). */
  constSensitive: boolean;
  /** The text had a normalized key, so texts of its shape classify alike unless constSensitive. */
  normalized: boolean;
}

/**
 * The caches that answer without the parser: exact text and fastLiteralKey shape. The sidecar keeps
 * them on the main thread (a hit stays synchronous); the normalized cache sits next to the parser.
 */
export class FrontCache {
  private readonly exact: Lru<ClassifyResult>;
  private readonly shaped: Lru<ClassifyResult>;
  readonly counts = { exactHits: 0, normalizedHits: 0, misses: 0 };

  constructor(
    private readonly maxEntries: number,
    private readonly maxTextLength: number,
  ) {
    this.exact = new Lru(maxEntries);
    // Keyed by fastLiteralKey: skips the parser round trip for plain statements with new literals.
    this.shaped = new Lru(maxEntries);
  }

  get exactSize(): number {
    return this.exact.size;
  }

  cacheable(text: string): boolean {
    return this.maxEntries > 0 && text.length <= this.maxTextLength;
  }

  /** A cached result, or the fast key to pass back to `store` after a miss. */
  lookup(text: string): { hit: ClassifyResult } | { hit?: undefined; fast: string | undefined } {
    const known = this.exact.get(text);
    if (known !== undefined) {
      this.counts.exactHits++;
      return { hit: known };
    }
    const fast = this.cacheable(text) ? fastLiteralKey(text) : undefined;
    if (fast !== undefined) {
      const hit = this.shaped.get(fast);
      if (hit !== undefined) {
        this.counts.normalizedHits++;
        return { hit };
      }
    }
    return { fast };
  }

  /**
   * Remembers a freshly classified result; returns it frozen. Parser failures are never stored.
   * `text` undefined: a normalized hit, kept under its shape only (varying literals would churn the exact cache).
   */
  store(text: string | undefined, fast: string | undefined, result: ClassifyResult, hints: CacheHints): ClassifyResult {
    const frozen = freezeResult(result);
    if ('parseError' in frozen && frozen.parserFailure === true) return frozen;
    if (fast !== undefined && hints.normalized && 'statements' in frozen && !hints.constSensitive) this.shaped.set(fast, frozen);
    if (text !== undefined && this.cacheable(text)) this.exact.set(text, frozen);
    return frozen;
  }
}

/** The normalized-text cache, next to the parser (normalizing needs it): see the top of this file. */
export class NormalizedCache {
  private readonly normalized: Lru<ClassifyResult>;
  hits = 0;

  constructor(
    maxEntries: number,
    private readonly maxTextLength: number,
  ) {
    this.normalized = new Lru(maxEntries);
  }

  get size(): number {
    return this.normalized.size;
  }

  /** Classifies `text`, through the normalized cache when it has a key. Throws ParserFailure. */
  classify(text: string): { result: ClassifyResult; hints: CacheHints } {
    const key = text.length <= this.maxTextLength && nestingDepth(cString(text)) <= MAX_NESTING_DEPTH ? normalizedKey(text) : undefined;
    if (key !== undefined) {
      const hit = this.normalized.get(key);
      if (hit !== undefined) {
        this.hits++;
        return { result: hit, hints: { constSensitive: false, normalized: true } };
      }
    }
    const detailed = classifyDetailed(text);
    const result = freezeResult(detailed.result);
    if (key !== undefined && 'statements' in result && !detailed.constSensitive) this.normalized.set(key, result);
    return { result, hints: { constSensitive: detailed.constSensitive, normalized: key !== undefined } };
  }
}

/** The refusal of a text the parser failed on; never cached. */
export function failureResult(err: ParserFailure): ClassifyResult {
  return Object.freeze({ parseError: err.message, parserFailure: true });
}

/**
 * A synchronous classifier in this isolate (tests, benchmarks, the CLI). The sidecar uses the
 * parser worker instead (parser-worker.ts), with the same caches split across the two threads.
 */
export function createClassifier(options: ClassifierOptions = {}): Classifier {
  const maxEntries = options.maxEntries ?? 10_000;
  const maxTextLength = options.maxTextLength ?? 16_384;
  const front = new FrontCache(maxEntries, maxTextLength);
  const normalized = new NormalizedCache(maxEntries, maxTextLength);

  function classify(text: string): ClassifyResult {
    assertClassifierReady();
    const found = front.lookup(text);
    if (found.hit !== undefined) return found.hit;
    const before = normalized.hits;
    let classified: { result: ClassifyResult; hints: CacheHints };
    try {
      classified = normalized.classify(text);
    } catch (err) {
      if (!(err instanceof ParserFailure)) throw err;
      noteParserFailure(err);
      return failureResult(err);
    }
    if (normalized.hits > before) {
      front.counts.normalizedHits++;
      return front.store(undefined, found.fast, classified.result, classified.hints);
    }
    front.counts.misses++;
    return front.store(text, found.fast, classified.result, classified.hints);
  }

  return {
    classify,
    stats: () => ({ ...front.counts, exactSize: front.exactSize, normalizedSize: normalized.size }),
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
  } catch (err) {
    rethrowFailure(err);
    return undefined;
  }
  const firstParam = norm.indexOf('$');
  if (firstParam < 0) return norm === text ? norm : undefined;
  return text.startsWith(norm.slice(0, firstParam)) ? norm : undefined;
}

export function freezeResult(result: ClassifyResult): ClassifyResult {
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
export class Lru<V> {
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
