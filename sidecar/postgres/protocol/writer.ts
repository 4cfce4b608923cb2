// Builds one protocol message: reserves the 5-byte header and fills in code and length on flush.
export class Writer {
  private buf: Buffer;
  private pos = 5;

  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  int8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  cstring(s: string): this {
    // A NUL would end the field early and shift every field after it: drop it.
    if (s.includes('\0')) s = s.replace(/\0/g, '');
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n + 1);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += n;
    this.buf[this.pos++] = 0;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** A typed message: code byte + int32 length + body. */
  flush(code: number): Buffer {
    this.buf[0] = code;
    this.buf.writeInt32BE(this.pos - 1, 1);
    return this.buf.subarray(0, this.pos);
  }

  /** A code-less startup-phase packet: int32 length + body. */
  flushStartup(): Buffer {
    const out = this.buf.subarray(1, this.pos);
    out.writeInt32BE(out.length, 0);
    return out;
  }
}
