// Decompression of upstream bodies (gzip, deflate in both of its forms, br), streamed or whole,
// bounded: a body that grows past the limit once decompressed (a decompression bomb) is refused,
// and one in an encoding we cannot decode is reported as such (the caller fails closed).
import { PassThrough, pipeline as pipelineCb, type Readable, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { HttpError } from '../errors';
import { readLimited } from '../read-limited';

/**
 * The decoded body; undefined for an encoding we cannot decode. stream.pipeline: an upstream
 * that dies mid-stream errors the decoder (and a decoder failure destroys the upstream body), so
 * a compressed stream always settles.
 */
export function decodeStream(body: Readable, encoding: string): Readable | undefined {
  let decoder: Transform;
  switch (encoding) {
    case '':
    case 'identity':
      return body;
    case 'gzip':
    case 'x-gzip':
      decoder = zlib.createGunzip();
      break;
    case 'deflate':
      return inflateEither(body);
    case 'br':
      decoder = zlib.createBrotliDecompress();
      break;
    default:
      return undefined;
  }
  return pipelineCb(body, decoder, () => {
    /* errors reach the reader through the destroyed decoder */
  });
}

/**
 * `deflate` as servers send it: zlib-wrapped (RFC 9110), or raw (some servers), told apart by the
 * zlib header (CM 8, check bits a multiple of 31) of the first bytes, as decodeBuffer does by
 * trying both. The decoder chosen, the body goes through it in a pipeline (backpressure kept).
 */
function inflateEither(body: Readable): Readable {
  const out = new PassThrough();
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    if (head.length < 2) return;
    body.off('data', onData);
    body.off('end', onEnd);
    body.pause();
    body.unshift(head);
    const wrapped = (head[0] & 0x0f) === 8 && ((head[0] << 8) | head[1]) % 31 === 0;
    pipelineCb(body, wrapped ? zlib.createInflate() : zlib.createInflateRaw(), out, () => {
      /* errors reach the reader through the destroyed output */
    });
  };
  const onEnd = (): void => {
    if (head.length > 0) out.destroy(new Error('truncated deflate stream'));
    else out.end();
  };
  body.on('data', onData);
  body.once('end', onEnd);
  body.once('error', (e) => out.destroy(e));
  return out;
}

/** Decoded bytes; undefined for an unknown encoding or corrupt data. Throws when the output would exceed limit. */
export function decodeBuffer(buf: Buffer, encoding: string, limit: number): Buffer | undefined {
  const opts = { maxOutputLength: limit };
  const tooLarge = (e: unknown): boolean => e instanceof RangeError || (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
  try {
    switch (encoding) {
      case '':
      case 'identity':
        return buf;
      case 'gzip':
      case 'x-gzip':
        return zlib.gunzipSync(buf, opts);
      case 'deflate':
        try {
          return zlib.inflateSync(buf, opts);
        } catch (e) {
          if (tooLarge(e)) throw e;
          return zlib.inflateRawSync(buf, opts); // some servers send raw deflate
        }
      case 'br':
        return zlib.brotliDecompressSync(buf, opts);
      default:
        return undefined;
    }
  } catch (e) {
    if (tooLarge(e)) throw e;
    return undefined;
  }
}

/** An upstream body read into memory; 502 unmaskable_response (message) past limit, the body destroyed (its connection released). */
export function readUpstreamBody(body: Readable, limit: number, message: string): Promise<Buffer> {
  return readLimited(body, limit, () => new HttpError(502, 'unmaskable_response', message), 'destroy');
}
