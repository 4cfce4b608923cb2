// Check-digit algorithms. They operate on a range of the scanned string and skip separators,
// so candidates are validated without slicing or allocating.

/** Luhn (ISO/IEC 7812) over the ASCII digits in s[start, end); other characters are skipped. */
export function luhnValid(s: string, start: number, end: number): boolean {
  let sum = 0;
  let double = false;
  for (let k = end - 1; k >= start; k--) {
    const c = s.charCodeAt(k);
    if (c < 48 || c > 57) continue;
    let d = c - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/**
 * ISO 13616 / ISO 7064 mod-97-10 over an IBAN in s[start, end) (spaces skipped): move the first
 * four characters to the end, letters count as 10..35, the remainder must be 1. Computed
 * incrementally so no big integer is built.
 */
export function ibanChecksumValid(s: string, start: number, end: number): boolean {
  let r = 0;
  for (let k = start + 4; k < end; k++) r = mod97Step(r, s.charCodeAt(k));
  for (let k = start; k < start + 4; k++) r = mod97Step(r, s.charCodeAt(k));
  return r === 1;
}

function mod97Step(r: number, c: number): number {
  if (c >= 48 && c <= 57) return (r * 10 + (c - 48)) % 97;
  if (c >= 65 && c <= 90) return (r * 100 + (c - 55)) % 97;
  return r; // separator
}

// IBAN length per country (SWIFT IBAN registry). Knowing the exact length lets the scanner
// read precisely one IBAN instead of guessing where a run of alphanumerics ends, which is
// what keeps false positives near zero on top of the 1-in-97 checksum.
const IBAN_LENGTHS =
  'AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 ' +
  'DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 ' +
  'IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 ' +
  'MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 ' +
  'SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30';

const IBAN_LENGTH_BY_CODE: Uint8Array = (() => {
  const t = new Uint8Array(26 * 26);
  for (const entry of IBAN_LENGTHS.split(' ')) {
    t[(entry.charCodeAt(0) - 65) * 26 + (entry.charCodeAt(1) - 65)] = Number(entry.slice(2));
  }
  return t;
})();

/** Longest IBAN in the registry (RU), used for the streaming hold-back bound. */
export const IBAN_MAX_LENGTH = 34;

/** IBAN length for a country code given as two char codes; 0 when not an IBAN country. */
export function ibanLength(c0: number, c1: number): number {
  if (c0 < 65 || c0 > 90 || c1 < 65 || c1 > 90) return 0;
  return IBAN_LENGTH_BY_CODE[(c0 - 65) * 26 + (c1 - 65)];
}
