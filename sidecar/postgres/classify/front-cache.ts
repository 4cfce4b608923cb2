// The classification caches that need no parser: the bounded cache they all use, and the main
// thread's exact-text and shape caches (cache.ts explains the three caches). Kept apart from
// cache.ts because importing libpg-query instantiates its WASM parser at once: the main thread
// must not pay for a parser that only the parser thread uses (4-5 MB RSS idle, bench/startup.ts).
import type { SqlStatementInfo } from '../../../common/policy/types';
import type { ClassifyResult } from './classify';
import { BoundedCache, OBJECT_BYTES, SLOT_BYTES, stringBytes } from '../bounded-cache';
import { fastLiteralKey } from './fast-key';

/** Default byte budget of each classification cache (exact, shape, normalized). */
export const DEFAULT_CACHE_BYTES = 4 * 1024 * 1024;

export interface ClassifierStats {
  exactHits: number;
  normalizedHits: number;
  misses: number;
  exactSize: number;
  normalizedSize: number;
  /** Estimated bytes held by the exact and shape caches (the normalized one lives next to the parser). */
  frontBytes?: number;
}

/** What a classification adds to the caches beside its result. */
export interface CacheHints {
  /** The result read a constant's value (see DetailedClassification). */
  constSensitive: boolean;
  /** The text had a normalized key, so texts of its shape classify alike unless constSensitive. */
  normalized: boolean;
}

export interface ClassifierOptions {
  /** Entries per cache (exact, shape and normalized). Default 10000. */
  maxEntries?: number;
  /** Estimated bytes per cache (keys and results). Default DEFAULT_CACHE_BYTES (4 MiB). */
  maxBytes?: number;
  /** Texts longer than this (in characters) are classified but not cached. Default 16384. */
  maxTextLength?: number;
}

/** The limits with their defaults filled in. */
export function cacheLimits(options: ClassifierOptions): CacheLimits {
  return {
    maxEntries: options.maxEntries ?? 10_000,
    maxBytes: options.maxBytes ?? DEFAULT_CACHE_BYTES,
    maxTextLength: options.maxTextLength ?? 16_384,
  };
}

export interface CacheLimits {
  /** Entries per cache; 0 turns caching off. */
  maxEntries: number;
  /** Estimated bytes per cache (keys and results). */
  maxBytes: number;
  /** Texts longer than this (characters) are classified but not cached. */
  maxTextLength: number;
}

/**
 * The caches that answer without the parser: exact text and fastLiteralKey shape. The sidecar keeps
 * them on the main thread (a hit stays synchronous); the normalized cache sits next to the parser.
 */
export class FrontCache {
  private readonly exact: BoundedCache<ClassifyResult>;
  private readonly shaped: BoundedCache<ClassifyResult>;
  readonly counts = { exactHits: 0, normalizedHits: 0, misses: 0 };

  constructor(private readonly limits: CacheLimits) {
    this.exact = new BoundedCache(limits.maxEntries, limits.maxBytes);
    // Keyed by fastLiteralKey: skips the parser round trip for plain statements with new literals.
    this.shaped = new BoundedCache(limits.maxEntries, limits.maxBytes);
  }

  get exactSize(): number {
    return this.exact.size;
  }

  get bytes(): number {
    return this.exact.bytes + this.shaped.bytes;
  }

  cacheable(text: string): boolean {
    return this.limits.maxEntries > 0 && text.length <= this.limits.maxTextLength;
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
    const size = resultBytes(frozen);
    if (fast !== undefined && hints.normalized && 'statements' in frozen && !hints.constSensitive) this.shaped.set(fast, frozen, size);
    if (text !== undefined && this.cacheable(text)) this.exact.set(text, frozen, size);
    return frozen;
  }
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

/** An upper estimate of the heap a classification result holds (strings, arrays, objects). */
export function resultBytes(value: unknown, depth = 0): number {
  if (typeof value === 'string') return stringBytes(value);
  if (value === null || typeof value !== 'object') return SLOT_BYTES;
  // Results are shallow (statements, a prepared body, arrays of names); a deep one is charged as such.
  if (depth > 8) return OBJECT_BYTES;
  let n = OBJECT_BYTES;
  if (Array.isArray(value)) for (const v of value) n += SLOT_BYTES + resultBytes(v, depth + 1);
  else for (const k in value) n += SLOT_BYTES + resultBytes((value as Record<string, unknown>)[k], depth + 1);
  return n;
}
