// Messages between the main thread and the parser worker thread.
import type { CacheHints, CacheLimits } from './front-cache';
import type { ClassifyResult } from './classify';

export type ParserThreadData = CacheLimits;

export interface ParserRequest {
  id: number;
  text: string;
}

export type ParserReply =
  | { type: 'ready' }
  /** The parser could not be loaded: the thread is useless. */
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; result: ClassifyResult; hints: CacheHints; normalizedHit: boolean }
  /** The parser itself failed on this text: the thread must be replaced. */
  | { type: 'failure'; id: number; message: string };
