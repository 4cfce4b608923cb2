// Identify the caller. With `spec.identity` every request carries the caller's JWT
// (`Proxy-Authorization` or `Authorization: Bearer`); it is verified before anything else is
// looked at, so an unauthenticated caller learns nothing (not even the routes). Without it the
// pod's own identity (set when the exchange was created) stands.
import { IdentityError } from '../../../common/identity/errors';
import { bearerFromHeaders } from '../../../common/identity/extract';
import type { Identity } from '../../../common/policy/types';
import { HttpError } from '../errors';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const identifyStage: Stage<RouteExchange> = {
  name: 'identify',
  run(ex) {
    const verifyToken = ex.services.options.verifyToken;
    if (!verifyToken) return undefined;
    return authenticate(ex, verifyToken);
  },
};

/** The verified identity of the token the request carries; a 401 HttpError naming the failed check otherwise. */
async function authenticate(ex: RouteExchange, verifyToken: (token: string) => Promise<Identity>): Promise<void> {
  const token = bearerFromHeaders(ex.req.headers);
  if (token === undefined) {
    throw new HttpError(
      401,
      'unauthenticated',
      "no token: this policy requires the caller's JWT as Proxy-Authorization or Authorization: Bearer",
      {},
      { 'www-authenticate': 'Bearer' },
    );
  }
  try {
    ex.identity = await verifyToken(token);
  } catch (err) {
    throw new HttpError(401, 'unauthenticated', tokenRefused(err), {}, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
}

/**
 * Why a caller's token was refused, for the agent: the verifier's message names the failed check
 * and never contains the token; anything else is an internal failure whose message is not the
 * agent's business. Shared with the forward proxy (its 407).
 */
export function tokenRefused(err: unknown): string {
  return err instanceof IdentityError ? `token refused: ${err.message} (${err.code})` : 'token refused: the token could not be verified';
}
