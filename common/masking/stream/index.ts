// Streaming and document masking for the HTTP/LLM data path (pure: no sockets).
export { maskJsonDocument, maskJsonStrings } from './json';
export type { MaskJsonOptions, MaskJsonResult } from './json';
export { createSseMasker } from './sse';
export type { SseFormat, SseMasker, SseMaskerOptions, SseMaskerStats } from './sse';
export { createHeldText } from './held-text';
export type { HeldText } from './held-text';
export { createSseParser, serializeBlock, serializeEvent } from './sse-parser';
export type { SseBlock, SseLine, SseParser } from './sse-parser';
