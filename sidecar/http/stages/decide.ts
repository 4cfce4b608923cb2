// Decide: the request as the upstream will act on it (path as upstreams read it, every method an
// override header may switch to, the JSON body when it was read) is judged by the policy engine;
// the strictest decision over those methods stands. Enforcing it (a denial, a hold) is hold.ts.
import type { CompiledPolicy } from '../../../common/policy/compile';
import { decide, UNPARSEABLE_BODY } from '../../../common/policy/engine';
import type { Decision, HttpOperation, Identity } from '../../../common/policy/types';
import { HttpError } from '../errors';
import { AmbiguousRequestError, methodsToJudge, strictest } from '../request-view';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const decideStage: Stage<RouteExchange> = {
  name: 'decide',
  run(ex) {
    const { req, body } = ex;
    try {
      ex.methods = methodsToJudge(req.method ?? 'GET', req.headers);
    } catch (err) {
      if (err instanceof AmbiguousRequestError) throw new HttpError(400, 'bad_request', err.message);
      throw err;
    }
    const op: HttpOperation = {
      type: 'http',
      target: ex.target,
      // A method override is what the upstream acts on: judged as that, and as the request line's.
      method: ex.methods[0],
      path: ex.path,
      host: ex.plan!.base.hostname,
      headers: req.headers,
      // Not JSON, or nested too deep to check: restrictive rules on body fields match (fail closed).
      json: body === undefined || body.kind === 'empty' ? undefined : body.kind === 'json' ? body.doc : UNPARSEABLE_BODY,
    };
    ex.op = op;
    ex.decision = decideMethods(ex.policy!, op, ex.methods, ex.identity);
  },
};

/** The strictest decision for op over every method the upstream may act on. Shared with the forward proxy. */
export function decideMethods<O extends HttpOperation>(policy: CompiledPolicy, op: O, methods: readonly string[], identity: Identity): Decision {
  return strictest(methods.map((method) => decide(policy, { ...op, method }, identity)));
}
