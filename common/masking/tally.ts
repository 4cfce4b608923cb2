// Masked values by what masked them, for the audit trail (warden_masked_values_total{detector}).

/**
 * Adds one masking pass's count to `by`. The maskers report which detectors fired, not how often
 * each did: exact for the usual single-detector value, an even split (remainder to the first) when
 * several fired in one pass; `other` when none is named.
 */
export function tallyMasked(by: Record<string, number>, sources: readonly string[], count: number): void {
  if (sources.length === 0) {
    by.other = (by.other ?? 0) + count;
    return;
  }
  const each = Math.floor(count / sources.length);
  let rest = count - each * sources.length;
  for (const d of sources) {
    const n = each + (rest > 0 ? 1 : 0);
    if (rest > 0) rest--;
    if (n > 0) by[d] = (by[d] ?? 0) + n;
  }
}
