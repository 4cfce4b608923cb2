// The two ways a response that cannot be inspected is refused (502 unmaskable_response).
import { HttpError } from '../errors';
import type { RouteExchange } from './exchange';

/** A response we cannot inspect: blocked (fail closed) unless the target allows passing it unmasked (then undefined, noted on the record). */
export function unmaskable(ex: RouteExchange, message: string): HttpError | undefined {
  if (!ex.plan!.allowUnparseable) return new HttpError(502, 'unmaskable_response', message);
  ex.error = `passed unmasked (unparseable: allow): ${message}`;
  return undefined;
}

/** A body the injected credential cannot be scrubbed from is never passed on, whatever `unparseable` says. */
export function unscrubbable(ex: RouteExchange, encoding: string): HttpError {
  return new HttpError(
    502,
    'unmaskable_response',
    `response from route "${ex.target}" has content-encoding "${encoding}", so the injected credential cannot be scrubbed from it`,
  );
}
