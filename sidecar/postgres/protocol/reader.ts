// Cursor over one message body; every read is bounds-checked so a truncated or lying message
// becomes a ProtocolError instead of a RangeError or silent garbage.
import { ProtocolError } from './errors';

export class BodyReader {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
    private readonly end: number,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new ProtocolError(`message truncated while reading ${what}`);
  }

  byte(what = 'byte'): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  int16(what = 'int16'): number {
    this.need(2, what);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(what = 'int32'): number {
    this.need(4, what);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint32(what = 'uint32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  cstring(what = 'string'): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) throw new ProtocolError(`unterminated ${what}`);
    const s = this.buf.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }

  bytes(n: number, what = 'bytes'): Buffer {
    if (n < 0) throw new ProtocolError(`negative length for ${what}`);
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return b;
  }

  expectEnd(what: string): void {
    if (this.pos !== this.end) throw new ProtocolError(`${this.end - this.pos} unexpected trailing bytes in ${what}`);
  }
}
