// The named route's request as it is judged: the path as upstreams read it, every method an
// override header may switch to (ambiguous ones refused, 400), the route's host, the headers, and
// the JSON body when it was read (not JSON, or nested too deep to check, is unparseable:
// restrictive rules on body fields match — fail closed).
import { UNPARSEABLE_BODY } from '../../../common/policy/engine';
import { HttpError } from '../errors';
import { AmbiguousRequestError, methodsToJudge } from '../request-view';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const routeOperationStage: Stage<RouteExchange> = {
  name: 'route-operation',
  run(ex) {
    const { req, body } = ex;
    try {
      ex.methods = methodsToJudge(req.method ?? 'GET', req.headers);
    } catch (err) {
      if (err instanceof AmbiguousRequestError) throw new HttpError(400, 'bad_request', err.message);
      throw err;
    }
    ex.op = {
      type: 'http',
      target: ex.target,
      // A method override is what the upstream acts on: judged as that, and as the request line's.
      method: ex.methods[0],
      path: ex.path,
      host: ex.plan!.base.hostname,
      headers: req.headers,
      json: body === undefined || body.kind === 'empty' ? undefined : body.kind === 'json' ? body.doc : UNPARSEABLE_BODY,
    };
  },
};
