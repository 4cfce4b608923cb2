// Reading a body into memory, bounded: shared by the named routes (request bodies judged or
// masked, upstream responses masked whole) and the forward proxy (request bodies judged).
import type { Readable } from 'node:stream';

/**
 * Reads a stream into memory. Once it passes `limit` bytes, reading stops and the promise rejects
 * with `tooLarge()`: the stream is left paused (`pause`, so an answer can still go out on the
 * agent's connection) or destroyed (`destroy`, releasing an upstream connection).
 */
export function readLimited(stream: Readable, limit: number, tooLarge: () => Error, onOverflow: 'pause' | 'destroy'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        stream.off('data', onData);
        if (onOverflow === 'pause') stream.pause();
        else stream.destroy();
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    };
    stream.on('data', onData);
    stream.once('end', () => resolve(Buffer.concat(chunks, size)));
    stream.once('error', reject);
  });
}
