import zlib from 'node:zlib';
import { decodeFrame, FRAME_HEADER_BYTES, MAX_PAYLOAD_BYTES, sealFrame } from './frame';

/** The frame layout built independently of sealFrame: crc32 over length, seq and payload. */
function frame(seq: number, payload: string): Buffer {
  const p = Buffer.from(payload);
  const body = Buffer.alloc(12 + p.length);
  body.writeUInt32LE(p.length, 0);
  body.writeUInt32LE(Math.floor(seq / 2 ** 32), 4);
  body.writeUInt32LE(seq % 2 ** 32, 8);
  p.copy(body, 12);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(zlib.crc32(body));
  return Buffer.concat([crc, body]);
}

function sealed(seq: number, payload: string): Buffer {
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + Buffer.byteLength(payload) + 7);
  const len = buf.write(payload, FRAME_HEADER_BYTES);
  return buf.subarray(0, sealFrame(buf, seq, len));
}

describe('sealFrame', () => {
  it('produces the documented layout', () => {
    expect(sealed(1, 'hello')).toEqual(frame(1, 'hello'));
    expect(sealed(2 ** 40 + 7, '{"a":"ü"}')).toEqual(frame(2 ** 40 + 7, '{"a":"ü"}'));
    expect(sealed(3, '')).toEqual(frame(3, ''));
  });
});

describe('decodeFrame', () => {
  const two = Buffer.concat([frame(5, 'first'), frame(6, 'second record')]);

  it('decodes consecutive frames', () => {
    const a = decodeFrame(two, 0, two.length, 5);
    expect(a.status).toBe('ok');
    if (a.status !== 'ok') return;
    expect(two.subarray(a.payloadStart, a.end).toString()).toBe('first');
    const b = decodeFrame(two, a.end, two.length, 6);
    expect(b).toMatchObject({ status: 'ok', seq: 6, end: two.length });
  });

  it('asks for more bytes at every split point of a frame', () => {
    const f = frame(9, 'some payload');
    for (let cut = 0; cut < f.length; cut++) {
      const r = decodeFrame(f, 0, cut, 9);
      expect(r).toEqual({ status: 'partial', need: cut < FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES : f.length });
    }
  });

  it('rejects a flipped payload bit, a wrong sequence number, zeros and a garbage length', () => {
    const f = frame(1, 'payload');
    f[FRAME_HEADER_BYTES + 2] ^= 0x01;
    expect(decodeFrame(f, 0, f.length, 1)).toEqual({ status: 'corrupt', reason: 'checksum mismatch' });
    expect(decodeFrame(frame(2, 'x'), 0, 17, 3)).toEqual({ status: 'corrupt', reason: 'sequence number 2 where 3 was expected' });
    const zeros = Buffer.alloc(64);
    expect(decodeFrame(zeros, 0, zeros.length, 1).status).toBe('corrupt');
    const garbage = Buffer.alloc(32, 0xff);
    expect(decodeFrame(garbage, 0, garbage.length, 1)).toEqual({
      status: 'corrupt',
      reason: `length ${0xffffffff} exceeds ${MAX_PAYLOAD_BYTES}`,
    });
  });
});
