// Content types the response stages tell apart.

/** application/json and every `+json` type. */
export function isJson(contentType: string | string[] | undefined): boolean {
  const t = String(contentType ?? '')
    .toLowerCase()
    .split(';')[0]
    .trim();
  return t === 'application/json' || t.endsWith('+json');
}

/** Newline-delimited JSON (Ollama, JSON Lines): streamed line by line. */
export function isNdjson(type: string): boolean {
  const t = type.split(';')[0].trim();
  return t.includes('ndjson') || t === 'application/jsonl' || t === 'application/x-jsonlines' || t === 'application/json-lines';
}
