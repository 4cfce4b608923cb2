// Imported first by sidecar/main.ts, for its side effect: V8 compiles WebAssembly (libpg-query, in
// the parser worker thread) with its baseline compiler only. Without this V8 re-compiles the
// parser with TurboFan on background threads a few seconds after the first parses, and the
// compiler's memory stays in glibc's arenas: ~95 MB more RSS (bench/startup.ts, issue 12) for no
// measurable gain, since parsing is rare behind the classification cache. The flag must be set
// before any WASM is compiled; NODE_OPTIONS does not accept it, so the process sets it itself.
// WARDEN_WASM_TIERUP=1 leaves it off (to measure what it costs).
import * as v8 from 'node:v8';

if (process.env.WARDEN_WASM_TIERUP !== '1') v8.setFlagsFromString('--liftoff-only');
