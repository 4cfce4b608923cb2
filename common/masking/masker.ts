// The masking entry points the data paths call.
//
//   PostgreSQL DataRow:  masker.maskUtf8(columnBytes) -> { buf, count, detectors } | null (null = unchanged)
//   JSON / text:         masker.mask(text) -> { text, count, detectors }
//   masked columns:      maskWhole(value, strategy, hashKey)
//
// Build one masker per masking rule (or per distinct detectors+strategy) when the policy
// loads; the per-value calls do no setup.

import { isAscii, isUtf8 } from 'node:buffer';
import type { DetectorName, MaskStrategy } from '../policy/types';
import { type CompiledDetectors, compileDetectors, maxMatchLength, mightMatch, mightMatchUtf8, scanMatches } from './detectors';
import { applyStrategy, assertHashKey, assertStrategy } from './strategies';

export interface TextMaskerSpec {
  detectors: readonly DetectorName[];
  strategy: MaskStrategy;
  /** HMAC key for the hash strategy (>= 16 bytes); ignored by the others. */
  hashKey: Buffer;
}

export interface MaskResult {
  /** The masked text; the very same string object when nothing matched. */
  text: string;
  /** Number of values masked (overlapping detections count once; see MAX_PASSES for re-scans). */
  count: number;
  /** Detectors that matched, each once, in order of first match (a shared frozen [] when none): do not mutate. */
  detectors: readonly DetectorName[];
}

/**
 * What maskUtf8 changed. The count travels with the bytes because the audit record needs it
 * (warden.masked.count); the object is only allocated when something was masked.
 */
export interface MaskedBytes {
  buf: Buffer;
  count: number;
  detectors: readonly DetectorName[];
}

export interface TextMasker {
  readonly detectors: readonly DetectorName[];
  readonly strategy: MaskStrategy;
  /** Streaming hold-back window for these detectors (see detectors.ts). */
  readonly maxMatchLength: number;
  mask(text: string): MaskResult;
  /**
   * Mask a UTF-8 value (a DataRow column, a CopyData line). Returns null when nothing matched,
   * without decoding when the byte pre-check rules out every detector (most values). Bytes
   * outside matches are preserved exactly, also for invalid UTF-8 or another ASCII-compatible
   * encoding (then decoded as latin1, which is lossless; detectors only look at ASCII).
   */
  maskUtf8(buf: Buffer): MaskedBytes | null;
  /** The strategy's replacement for one value the given detector matched (for callers that found the match in a wider context). */
  maskValue: (value: string, detector: DetectorName) => string;
  /** The strategy's replacement for a value that is sensitive whatever it contains (a jsonPath selected it), with this masker's own key. */
  maskWhole(value: string): string;
  /** The compiled detectors (for the streaming hold-back, which scans with the same ones). */
  readonly compiled: CompiledDetectors;
}

const NONE: readonly DetectorName[] = Object.freeze([]);

export function createTextMasker(spec: TextMaskerSpec): TextMasker {
  const compiled = compileDetectors(spec.detectors);
  const strategy = spec.strategy;
  assertStrategy(strategy);
  if (strategy === 'hash') assertHashKey(spec.hashKey);
  const key = spec.hashKey;

  const mask = (text: string): MaskResult => {
    if (compiled.bits === 0 || !mightMatch(text, compiled)) return { text, count: 0, detectors: NONE };
    return maskMatches(text, compiled, strategy, key);
  };

  const maskUtf8 = (buf: Buffer): MaskedBytes | null => {
    if (compiled.bits === 0 || !mightMatchUtf8(buf, compiled)) return null;
    // ASCII (the common case) decodes fastest as latin1; invalid UTF-8 must, to round-trip.
    const encoding: BufferEncoding = isAscii(buf) || !isUtf8(buf) ? 'latin1' : 'utf8';
    const r = maskMatches(buf.toString(encoding), compiled, strategy, key);
    if (r.count === 0) return null;
    return { buf: Buffer.from(r.text, encoding), count: r.count, detectors: r.detectors };
  };

  const maskValue = (value: string, detector: DetectorName): string => applyStrategy(strategy, value, detector, key);
  const whole = (value: string): string => applyStrategy(strategy, value, undefined, key);

  return {
    detectors: compiled.names,
    strategy,
    maxMatchLength: maxMatchLength(compiled.names),
    mask,
    maskUtf8,
    maskValue,
    maskWhole: whole,
    compiled,
  };
}

/**
 * Detectors look at a candidate's neighbours ("2+14155552671" is arithmetic, not a phone), and
 * masking changes neighbours: "4111111111111111+14155552671" masks the card, after which the
 * phone stands alone. So the output is scanned again until nothing matches, which makes
 * masking idempotent (mask(mask(x)) === mask(x)) and masks what only the neighbour hid. The
 * extra scan only runs on values that had a match.
 */
export const MAX_PASSES = 4;

function maskMatches(text: string, compiled: CompiledDetectors, strategy: MaskStrategy, key: Buffer): MaskResult {
  let matches = scanMatches(text, compiled);
  if (matches.length === 0) return { text, count: 0, detectors: NONE };
  let current = text;
  let count = 0;
  const seen: DetectorName[] = [];
  for (let pass = 0; pass < MAX_PASSES && matches.length > 0; pass++) {
    let out = '';
    let last = 0;
    for (const m of matches) {
      out += current.slice(last, m.start) + applyStrategy(strategy, current.slice(m.start, m.end), m.detector, key);
      last = m.end;
      if (!seen.includes(m.detector)) seen.push(m.detector);
    }
    current = out + current.slice(last);
    count += matches.length;
    matches = mightMatch(current, compiled) ? scanMatches(current, compiled) : [];
  }
  return { text: current, count, detectors: seen };
}

/** Mask a whole value (a masked column): the value is sensitive regardless of its content. */
export function maskWhole(value: string, strategy: MaskStrategy, hashKey: Buffer): string {
  assertStrategy(strategy);
  if (strategy === 'hash') assertHashKey(hashKey);
  return applyStrategy(strategy, value, undefined, hashKey);
}
