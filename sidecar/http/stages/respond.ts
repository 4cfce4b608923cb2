// Respond: the upstream's answer goes back by the way its type allows inspecting it —
//   event streams and NDJSON, streamed event by event (respond-events.ts);
//   JSON and text/*, buffered whole within the masked-response limit (respond-buffered.ts);
//   everything else, and what nothing needs to read, passed through (respond-pass.ts).
// Masked responses of a type the maskers cannot read (octet-stream, multipart, images) are refused
// with 502 unmaskable_response unless the target says `unparseable: allow`. Without masking, only
// what response rules can read (JSON, event streams) is inspected; event streams of a route with a
// credential are read too, to scrub it across events.
import type { RouteExchange } from './exchange';
import { isJson, isNdjson } from './media-types';
import { respondBuffered } from './respond-buffered';
import { respondEvents } from './respond-events';
import { respondPass } from './respond-pass';
import type { Stage } from './stage';
import { unmaskable } from './unmaskable';

export const respondStage: Stage<RouteExchange> = {
  name: 'respond',
  run(ex) {
    const up = ex.upstream!;
    const plan = ex.plan!.responsePlan;
    /** Response rules to check on each parsed document; none means nothing needs inspecting. */
    const inspect = ex.responseRules.length > 0;
    const noBody =
      ex.method === 'HEAD' || up.statusCode === 204 || up.statusCode === 304 || up.statusCode < 200 || up.headers['content-length'] === '0';
    const type = String(up.headers['content-type'] ?? '').toLowerCase();
    let kind = noBody
      ? 'pass'
      : type.startsWith('text/event-stream')
        ? 'sse'
        : isNdjson(type)
          ? 'ndjson'
          : isJson(type)
            ? 'json'
            : type.startsWith('text/')
              ? 'text'
              : 'opaque';
    if (kind === 'opaque') {
      if (plan) {
        // octet-stream, multipart, images, no Content-Type: nothing the maskers can read.
        const e = unmaskable(ex, `response from route "${ex.target}" has content-type "${type || '(none)'}", which cannot be masked`);
        if (e) throw e;
      }
      kind = 'pass';
    }
    const streamed = kind === 'sse' || kind === 'ndjson';
    if (!plan && (!inspect || kind === 'text') && !(ex.scrub && streamed)) kind = 'pass';

    const encoding = String(up.headers['content-encoding'] ?? 'identity')
      .toLowerCase()
      .trim();
    if (kind === 'pass') return respondPass(ex, type, encoding, noBody);
    if (kind === 'sse' || kind === 'ndjson') return respondEvents(ex, kind, type, encoding);
    return respondBuffered(ex, kind === 'json', type, encoding);
  },
};
