// Public surface of the masking module. See masker.ts for the entry points the data paths use.
export { createTextMasker, maskWhole } from './masker';
export type { MaskResult, MaskedBytes, TextMasker, TextMaskerSpec } from './masker';
export {
  DETECTOR_NAMES,
  compileDetectors,
  findMatches,
  holdFrom,
  maxMatchLength,
  mightMatch,
  mightMatchUtf8,
  scanMatches,
} from './detectors';
export type { CompiledDetectors, DetectorMatch } from './detectors';
export { MASK_STRATEGIES, MIN_HASH_KEY_BYTES, REDACTED, applyStrategy, hashToken, last4 } from './strategies';
