// The HTTP path as a pipeline of stages (after undici's interceptors: each concern is one small
// step, composed in order, instead of a branch in one long function).
//
// A stage does one job on the per-request context it is given (RouteExchange for named routes,
// stages/exchange.ts): it reads what earlier stages left there, writes what it adds, and either
// returns (the next stage runs), refuses by throwing an HttpError (errors.ts; the composition
// answers it and nothing after runs), or answers the request itself (the last stage).
//
// HOW TO ADD A STAGE (e.g. the MCP handling):
//   1. Write `sidecar/http/stages/<concern>.ts` exporting `const <concern>Stage: Stage<RouteExchange>`
//      (or a factory, when it needs handler-wide services); put what it needs or leaves for later
//      stages on the exchange as a field, initialised in the exchange's constructor.
//   2. Add it at its place in the list in routes/route-proxy.ts (and/or forward/forward-proxy.ts).
//   3. Test it beside the file, and through the composition's existing suites.
// A synchronous job returns void (no promise, no microtask hop): only a stage that really waits
// (reading a body, an approval, the upstream) returns a promise.

export interface Stage<C> {
  /** For stack traces and debugging. */
  readonly name: string;
  /** Does the stage's job; undefined when done synchronously, a promise only when it must wait. */
  run(ctx: C): void | Promise<void>;
}

/**
 * Runs the stages in order. Synchronous while they are; from the first stage that returns a
 * promise on, the rest run in one async continuation (one await per waiting stage, no more).
 */
export function runStages<C>(stages: readonly Stage<C>[], ctx: C): void | Promise<void> {
  for (let i = 0; i < stages.length; i++) {
    const pending = stages[i].run(ctx);
    if (pending !== undefined) return continueStages(stages, ctx, i + 1, pending);
  }
  return undefined;
}

async function continueStages<C>(stages: readonly Stage<C>[], ctx: C, from: number, pending: Promise<void>): Promise<void> {
  await pending;
  for (let i = from; i < stages.length; i++) {
    const next = stages[i].run(ctx);
    if (next !== undefined) await next;
  }
}
