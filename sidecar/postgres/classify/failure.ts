// Telling a syntax error (the grammar rejects the text: an answer) from a failure of the parser
// itself (a RangeError or a WebAssembly RuntimeError: the WASM instance may be corrupted since).

/** Thrown for a failure of the parser itself: whoever owns the WASM instance must replace it. */
export class ParserFailure extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ParserFailure';
  }
}

/** What a plain Error from a failing WASM instance says (as opposed to the grammar's messages). */
const FAILURE_MESSAGE = /out of bounds|out of memory|unreachable|stack|abort/i;

/**
 * libpg-query reports what PostgreSQL's grammar rejects as a SqlError from parse and as a plain
 * Error from normalize and scan. A RangeError, a WebAssembly RuntimeError, anything that is not an
 * Error, and a plain Error that reads like a crash are failures of the parser itself.
 */
export function isSyntaxError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'SqlError' || 'sqlDetails' in err) return true;
  return err.name === 'Error' && !FAILURE_MESSAGE.test(err.message);
}

/** Re-throws a failure of the parser itself as a ParserFailure (fail closed); returns for a syntax error. */
export function rethrowFailure(err: unknown): void {
  if (err instanceof ParserFailure) throw err;
  if (!isSyntaxError(err))
    throw new ParserFailure(`the SQL parser failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
