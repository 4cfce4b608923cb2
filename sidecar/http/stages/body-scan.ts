// A byte scan that tells, before any walk, that masking a JSON body cannot change it: then the
// original bytes go out and the document is not walked or re-serialised (most API traffic holds
// nothing a detector looks for). Hand-written for speed: one native indexOf and one table
// lookup per byte (the detectors' own pre-check, mightMatchUtf8).
//
// Why the scan of the raw text is enough. Without a backslash, every string and key of the
// document is a contiguous run of its text, byte for byte (no escape to decode: `jane\u0040x.io`
// is an address once parsed, so a backslash anywhere sends the body the slow way). The detectors'
// pre-check fires on single characters (digits, '@') or on a lead whose look-around only asks for
// more characters to be present (`sk-`, `AKIA`, `password:`), so a run of the text cannot trigger
// where the whole text does not. Numbers are masked through their digits (`4.111111111111111e15`
// is a card), and a digit in the text fires every digit detector. A jsonPath masks whatever it
// selects, so a rule with jsonPaths always takes the slow way. A detector whose pre-check would
// look behind for a quote (or anything the JSON syntax adds around a string) breaks this argument:
// such a detector must make this function return false.
import { mightMatchUtf8 } from '../../../common/masking/detectors';
import type { MaskPlan } from './target-plan';

const BACKSLASH = 0x5c;

/** True when masking the JSON document in `raw` with these maskers certainly changes nothing. */
export function jsonMaskingIsNoop(raw: Buffer, maskers: MaskPlan['maskers']): boolean {
  if (raw.indexOf(BACKSLASH) !== -1) return false;
  for (const m of maskers) {
    if (m.jsonPaths.length > 0) return false;
    if (mightMatchUtf8(raw, m.masker.compiled)) return false;
  }
  return true;
}
