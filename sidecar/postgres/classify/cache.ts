// A classifier with bounded caches in front of the parser, because the proxy classifies every
// statement it forwards (each cache is bounded by entries and by estimated bytes, see BoundedCache
// in ../bounded-cache.ts, so ever-new long statements cannot grow it past its budget):
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
import { assertClassifierReady, classifyDetailed, cString, noteParserFailure, type ClassifyResult } from './classify';
import { BoundedCache } from '../bounded-cache';
import {
  cacheLimits,
  FrontCache,
  freezeResult,
  resultBytes,
  type CacheHints,
  type CacheLimits,
  type ClassifierOptions,
  type ClassifierStats,
} from './front-cache';
import { ParserFailure, rethrowFailure } from './failure';
import { MAX_NESTING_DEPTH, nestingDepth } from './prescan';

export { cacheLimits, FrontCache, freezeResult, type CacheHints, type ClassifierOptions, type ClassifierStats } from './front-cache';

export interface Classifier {
  classify(text: string): ClassifyResult;
  stats(): ClassifierStats;
}

/** The normalized-text cache, next to the parser (normalizing needs it): see the top of this file. */
export class NormalizedCache {
  private readonly normalized: BoundedCache<ClassifyResult>;
  private readonly maxTextLength: number;
  hits = 0;

  constructor(limits: CacheLimits) {
    this.normalized = new BoundedCache(limits.maxEntries, limits.maxBytes);
    this.maxTextLength = limits.maxTextLength;
  }

  get size(): number {
    return this.normalized.size;
  }

  get bytes(): number {
    return this.normalized.bytes;
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
    if (key !== undefined && 'statements' in result && !detailed.constSensitive) this.normalized.set(key, result, resultBytes(result));
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
  const limits = cacheLimits(options);
  const front = new FrontCache(limits);
  const normalized = new NormalizedCache(limits);

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
    stats: () => ({ ...front.counts, exactSize: front.exactSize, normalizedSize: normalized.size, frontBytes: front.bytes }),
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
