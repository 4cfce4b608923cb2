// Copies a short string into a buffer when it is ASCII, the case of nearly every audit field: a
// loop costs less than a native utf8 write for a few bytes (hot path, hand-written for speed).

/** Writes `s` at `at` and returns true when every code unit is ASCII; false (bytes undefined) otherwise. */
export function copyAscii(buf: Buffer, at: number, s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return false;
    buf[at + i] = c;
  }
  return true;
}
