// Public surface of the SQL classifier. The sidecar uses `createParserWorker()` (the parser in one
// worker thread, caches on the calling thread). In-process: call `initClassifier()` once (it loads
// the parser's WASM), then use `createClassifier()` or `classifySql()`.
export { initClassifier, classifySql, classifyDetailed, toSqlOperation } from './classify';
export type { ClassifyResult, DetailedClassification } from './classify';
export { createClassifier, normalizedKey } from './cache';
export type { Classifier, ClassifierOptions, ClassifierStats } from './cache';
export { SQL_KINDS } from './kinds';
export type { SqlKind } from './kinds';
export { DYNAMIC_SQL_FUNCTIONS } from './dynamic';
export { createParserWorker, PARSE_TIME_BUDGET_MS } from './parser-worker';
export type { AsyncClassifier, ParserWorkerOptions, ParserWorkerStats } from './parser-worker';
export { MAX_NESTING_DEPTH } from './prescan';
