// Bounded copies of request and response bodies for the audit record's payloads (`audit.payloads`).
// What is captured is what crossed the sidecar after masking, so a recording never holds more than
// the agent or the upstream was allowed to see.

/** Longest body kept per direction; the rest is cut and the record says so. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

export class PayloadCapture {
  private readonly parts: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly max = MAX_PAYLOAD_BYTES) {}

  add(chunk: Buffer | string): void {
    if (this.size >= this.max) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const room = this.max - this.size;
    if (buf.length > room) {
      this.parts.push(buf.subarray(0, room));
      this.size = this.max;
      this.truncated = true;
      return;
    }
    this.parts.push(buf);
    this.size += buf.length;
  }

  /** The captured text (UTF-8; a character cut at the limit becomes U+FFFD). */
  text(): string {
    return Buffer.concat(this.parts, this.size).toString('utf8');
  }
}
