// The upstream's response headers as the agent gets them: end-to-end headers only, the injected
// credential scrubbed from them, and the values the policy masks masked (header-masking.ts).
import { endToEndHeaders } from '../headers';
import { maskResponseHeaders } from '../routes/header-masking';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const maskResponseHeadersStage: Stage<RouteExchange> = {
  name: 'mask-response-headers',
  run(ex) {
    ex.maskedInRequest = ex.masked;
    const headers = endToEndHeaders(ex.upstream!.headers);
    ex.responseHeaders = headers;
    if (ex.scrub) ex.countScrubbed(ex.scrub.headers(headers));
    const plan = ex.plan!.responsePlan;
    if (plan) {
      const n = maskResponseHeaders(headers, plan.maskers);
      if (n > 0) {
        ex.masked += n;
        ex.countMasked(['headers'], n);
      }
    }
  },
};
