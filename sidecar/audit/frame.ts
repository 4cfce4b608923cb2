// The spool's record framing, pure: bytes in, frames out. One frame is
//   [u32 crc32][u32 payload length][u32 seq high][u32 seq low][payload]      (little-endian)
// where the CRC (zlib.crc32) covers everything after itself: length, sequence number and payload.
// Covering the length means a zero-filled tail (what a filesystem may show after a crash) never
// reads as a valid empty record; carrying the sequence number lets a reader check that a frame is
// the one it expects at that position, not stale bytes.
import zlib from 'node:zlib';

export const FRAME_HEADER_BYTES = 16;
/** Longest payload a frame may carry: a larger length field is garbage, not a record. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

const TWO_32 = 0x1_0000_0000;

/**
 * Fills in the header of a frame whose payload already sits at buf[16, 16 + payloadLength).
 * Returns the frame's length. Writing the payload in place first lets the caller build the whole
 * frame in one reused buffer and hand it to the kernel in one write.
 */
export function sealFrame(buf: Buffer, seq: number, payloadLength: number): number {
  buf.writeUInt32LE(payloadLength, 4);
  buf.writeUInt32LE(Math.floor(seq / TWO_32), 8);
  buf.writeUInt32LE(seq >>> 0, 12);
  const end = FRAME_HEADER_BYTES + payloadLength;
  buf.writeUInt32LE(zlib.crc32(buf.subarray(4, end)), 0);
  return end;
}

export type FrameResult =
  /** A whole, valid frame: the payload is buf[payloadStart, end). */
  | { status: 'ok'; seq: number; payloadStart: number; end: number }
  /** Not enough bytes yet: `need` bytes from `start` would hold the frame (or its header). */
  | { status: 'partial'; need: number }
  | { status: 'corrupt'; reason: string };

/** Decodes the frame at buf[start, end). `expectedSeq` is the sequence number it must carry. */
export function decodeFrame(buf: Buffer, start: number, end: number, expectedSeq: number): FrameResult {
  const avail = end - start;
  if (avail < FRAME_HEADER_BYTES) return { status: 'partial', need: FRAME_HEADER_BYTES };
  const length = buf.readUInt32LE(start + 4);
  if (length > MAX_PAYLOAD_BYTES) return { status: 'corrupt', reason: `length ${length} exceeds ${MAX_PAYLOAD_BYTES}` };
  const frameEnd = start + FRAME_HEADER_BYTES + length;
  if (frameEnd > end) return { status: 'partial', need: FRAME_HEADER_BYTES + length };
  const crc = zlib.crc32(buf.subarray(start + 4, frameEnd));
  if (crc !== buf.readUInt32LE(start)) return { status: 'corrupt', reason: 'checksum mismatch' };
  const seq = buf.readUInt32LE(start + 8) * TWO_32 + buf.readUInt32LE(start + 12);
  if (seq !== expectedSeq) return { status: 'corrupt', reason: `sequence number ${seq} where ${expectedSeq} was expected` };
  return { status: 'ok', seq, payloadStart: start + FRAME_HEADER_BYTES, end: frameEnd };
}
