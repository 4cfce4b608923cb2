// The LLM call's model (gen_ai.request.model) for the audit record, read from the judged request
// body, and a tap that reads token usage from the response. Only with audit records kept.
import { createGenAiResponseTap, genAiFromRequest } from '../genai';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const genAiStage: Stage<RouteExchange> = {
  name: 'genai',
  run(ex) {
    const body = ex.body;
    if (!ex.llm && !(ex.services.options.auditRecords && body?.kind === 'json')) return;
    ex.genAi = genAiFromRequest(ex.path, body?.kind === 'json' ? body.doc : undefined, ex.plan!.spec.baseUrl);
    if (ex.genAi) ex.tap = createGenAiResponseTap();
  },
};

/** LLM API calls, by path: their request body is read for the model name (gen_ai.request.model). */
const GENAI_PATH = /(\/(chat\/completions|completions|embeddings|responses|messages)|:(generateContent|streamGenerateContent))$/;
export function looksLikeGenAi(path: string): boolean {
  return GENAI_PATH.test(path);
}
