// Collects what one pass over incoming bytes sends on: runs of frames forwarded unchanged from the
// same chunk are kept as one view (no copy), so a typical response goes out as a slice of the
// chunk it arrived in, in a single write.
export class OutputBatch {
  private parts: Buffer[] = [];
  private runBuf: Buffer | undefined;
  private runStart = 0;
  private runEnd = 0;

  /** Forward bytes [start, end) of buf unchanged. */
  view(buf: Buffer, start: number, end: number): void {
    if (this.runBuf === buf && this.runEnd === start) {
      this.runEnd = end;
      return;
    }
    this.closeRun();
    this.runBuf = buf;
    this.runStart = start;
    this.runEnd = end;
  }

  /** Send bytes the sidecar made (a masked row, a denial). */
  push(b: Buffer): void {
    this.closeRun();
    this.parts.push(b);
  }

  /** Everything collected, as one buffer, or undefined when nothing was. */
  take(): Buffer | undefined {
    this.closeRun();
    const n = this.parts.length;
    if (n === 0) return undefined;
    const out = n === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [];
    return out;
  }

  private closeRun(): void {
    if (this.runBuf === undefined) return;
    this.parts.push(this.runBuf.subarray(this.runStart, this.runEnd));
    this.runBuf = undefined;
  }
}
