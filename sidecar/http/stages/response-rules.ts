// Response rules (`match.http.response`, deny only). This stage finds the rules that apply to the
// request, before it is sent (a response that will be checked is asked for whole: upstream-request.ts
// drops Range). The checks themselves run where the response is read: a JSON document before any
// byte of it is sent (respond-buffered.ts), each event of a stream before the output carrying it
// (respond-events.ts).
import { NOT_JSON, type SseItem } from '../../../common/masking/stream/sse';
import type { CompiledRule } from '../../../common/policy/compile';
import { decideResponseWith, responseRulesFor, UNPARSEABLE_BODY } from '../../../common/policy/engine';
import { jsonTooDeep } from '../../../common/policy/jsonpath';
import type { Decision } from '../../../common/policy/types';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const responseRulesStage: Stage<RouteExchange> = {
  name: 'response-rules',
  run(ex) {
    ex.responseRules = responseRulesFor(ex.policy!, ex.op!, ex.identity);
  },
};

/** A parsed response document against the rules; too deep to check counts as unparseable (deny rules match: fail closed). */
export function checkDocument(rules: readonly CompiledRule[], doc: unknown, tooDeep: boolean): Decision | undefined {
  return decideResponseWith(rules, tooDeep ? UNPARSEABLE_BODY : doc);
}

/** The parsed JSON of an event, for response rules: an event without data, or whose data is not JSON (`[DONE]`), matches nothing; one nested too deep is unparseable (deny rules match). */
export function checkEvent(item: SseItem, rules: readonly CompiledRule[]): Decision | undefined {
  const doc = item.doc;
  if (doc === NOT_JSON || doc === null || typeof doc !== 'object') return undefined;
  return decideResponseWith(rules, jsonTooDeep(doc) ? UNPARSEABLE_BODY : doc);
}
