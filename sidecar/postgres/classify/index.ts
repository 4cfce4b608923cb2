// Public surface of the SQL classifier. Call `initClassifier()` once at startup (it loads the
// parser's WASM), then use `createClassifier()` on the hot path or `classifySql()` directly.
export { initClassifier, classifySql, classifyDetailed, toSqlOperation } from './classify';
export type { ClassifyResult, DetailedClassification } from './classify';
export { createClassifier, normalizedKey } from './cache';
export type { Classifier, ClassifierOptions, ClassifierStats } from './cache';
export { SQL_KINDS } from './kinds';
export type { SqlKind } from './kinds';
export { DYNAMIC_SQL_FUNCTIONS } from './dynamic';
