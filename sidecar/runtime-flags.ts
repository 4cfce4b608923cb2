// Imported first by sidecar/main.ts, for its side effects on V8's flags (process-wide: the parser
// and audit threads too). NODE_OPTIONS does not accept these, so the process sets them itself.
// - --liftoff-only: V8 compiles WebAssembly (libpg-query, in the parser worker thread) with its
//   baseline compiler only. Without it V8 re-compiles the parser with TurboFan on background
//   threads a few seconds after the first parses, and the compiler's memory stays in glibc's
//   arenas: ~95 MB more RSS (bench/startup.ts, issue 12) for no measurable gain, since parsing is
//   rare behind the classification cache. Must be set before any WASM is compiled.
//   WARDEN_WASM_TIERUP=1 leaves it off (to measure what it costs).
// - --heap-growing-percent: after a full GC a heap may grow by this much before the next one,
//   instead of V8's dynamic 1.1-4x. Under load most of the sidecar's heap is short-lived garbage
//   (records, frames) waiting for that GC; at 10% the audited peak is ~15 MB lower (bench/pg-bench.ts)
//   for a few more full GCs of small heaps. WARDEN_HEAP_GROWING_PERCENT=0 leaves V8's default.
import * as v8 from 'node:v8';

if (process.env.WARDEN_WASM_TIERUP !== '1') v8.setFlagsFromString('--liftoff-only');

/** Percent a heap may grow after a full GC (see above). */
export const HEAP_GROWING_PERCENT = 10;
const growing = Number(process.env.WARDEN_HEAP_GROWING_PERCENT ?? HEAP_GROWING_PERCENT);
if (Number.isInteger(growing) && growing > 0) v8.setFlagsFromString(`--heap-growing-percent=${growing}`);
