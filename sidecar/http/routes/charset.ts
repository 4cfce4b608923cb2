// The charset a response declares. The detectors read text; a UTF-16 or latin1 body read as UTF-8
// is mojibake in which nothing is found, so a card number in `text/plain; charset=utf-16le` went
// through unmasked. A masked (or inspected) body is decoded as it declares (a byte-order mark
// wins, as in browsers), masked, and sent as UTF-8 with the charset parameter saying so. A
// charset that cannot be decoded, or bytes invalid in it, are refused (unmaskable).
import { Transform, type TransformCallback } from 'node:stream';
import { TextDecoder } from 'node:util';

/** The `charset` parameter, lower case, quotes removed; undefined when there is none. */
export function declaredCharset(contentType: string): string | undefined {
  const m = /;\s*charset\s*=\s*("?)([^";\s]+)\1/i.exec(contentType);
  return m ? m[2].toLowerCase() : undefined;
}

/** The charset a byte-order mark names, if the body starts with one. */
export function bomCharset(buf: Buffer): string | undefined {
  if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) return 'utf-8';
  if (buf.length >= 2 && buf[0] === 0xff && buf[1] === 0xfe) return 'utf-16le';
  if (buf.length >= 2 && buf[0] === 0xfe && buf[1] === 0xff) return 'utf-16be';
  return undefined;
}

export function isUtf8(label: string | undefined): boolean {
  if (label === undefined) return true;
  try {
    return new TextDecoder(label).encoding === 'utf-8';
  } catch {
    return false;
  }
}

/** A fatal decoder for the label (throws on invalid bytes); undefined when the label is unknown. */
export function decoderFor(label: string): TextDecoder | undefined {
  try {
    return new TextDecoder(label, { fatal: true });
  } catch {
    return undefined;
  }
}

/** The content type with its charset parameter replaced by (or given) utf-8. */
export function withUtf8Charset(contentType: string): string {
  const bare = contentType.replace(/;\s*charset\s*=\s*("?)[^";\s]*\1/gi, '');
  return `${bare}; charset=utf-8`;
}

/** Decodes a stream in `decoder`'s charset into UTF-8 bytes; invalid input fails the stream. */
export function transcodeToUtf8(decoder: TextDecoder): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      try {
        const s = decoder.decode(chunk, { stream: true });
        cb(null, s === '' ? undefined : Buffer.from(s, 'utf8'));
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        const s = decoder.decode();
        cb(null, s === '' ? undefined : Buffer.from(s, 'utf8'));
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}
