// GenAI attributes (OTel gen_ai.* semantic conventions) from LLM traffic passing through an HTTP
// route: the request says provider, operation, model and whether it streams; the response (one
// JSON document, or SSE events as they pass) says response id and model, token usage and finish
// reasons. Pure: documents and strings in, an AuditGenAi out; nothing here throws on odd input.
import type { AuditGenAi } from '../../common/audit/record';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** gen_ai.provider.name for well-known API hosts. */
export function providerFromBaseUrl(baseUrl: string | undefined): string | undefined {
  if (!baseUrl) return undefined;
  let host: string;
  try {
    host = new URL(baseUrl).hostname.toLowerCase();
  } catch {
    return undefined;
  }
  if (host === 'api.openai.com') return 'openai';
  if (host === 'api.anthropic.com') return 'anthropic';
  if (host.endsWith('.openai.azure.com')) return 'azure.ai.openai';
  if (host === 'generativelanguage.googleapis.com') return 'gcp.gemini';
  return undefined;
}

interface PathShape {
  provider: string;
  operation: string;
  /** The model named by the path (Gemini `models/NAME:op`, Azure deployment). */
  model?: string;
  streamed?: boolean;
}

const GEMINI_PATH = /\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;
const AZURE_DEPLOYMENT = /\/openai\/deployments\/([^/]+)\//;

/** Recognises an LLM API by its path; matched on the suffix, so a route or API-version prefix does not matter. */
function shapeOfPath(path: string): PathShape | undefined {
  const gemini = GEMINI_PATH.exec(path);
  if (gemini)
    return {
      provider: 'gcp.gemini',
      operation: 'generate_content',
      model: gemini[1],
      streamed: gemini[2] === 'streamGenerateContent' || undefined,
    };
  const model = AZURE_DEPLOYMENT.exec(path)?.[1];
  if (path.endsWith('/chat/completions')) return { provider: 'openai', operation: 'chat', model };
  if (path.endsWith('/completions')) return { provider: 'openai', operation: 'text_completion', model };
  if (path.endsWith('/embeddings')) return { provider: 'openai', operation: 'embeddings', model };
  // The Responses API generates chat-style output; OTel has no separate operation for it.
  if (path.endsWith('/responses')) return { provider: 'openai', operation: 'chat', model };
  if (path.endsWith('/messages')) return { provider: 'anthropic', operation: 'chat' };
  return undefined;
}

/**
 * The request side of an LLM call: undefined when the request is not recognisably one (neither a
 * known LLM API path nor a JSON body with a string `model`). `body` is the parsed JSON body, if any.
 */
export function genAiFromRequest(path: string, body: unknown, baseUrl?: string): AuditGenAi | undefined {
  const p = path.split('?')[0];
  const shape = shapeOfPath(p);
  const doc = isObj(body) ? body : undefined;
  const model = str(doc?.model);
  if (!shape && !model) return undefined;
  const out: AuditGenAi = {};
  const provider = providerFromBaseUrl(baseUrl) ?? shape?.provider;
  if (provider) out.provider = provider;
  if (shape) out.operation = shape.operation;
  const requestModel = model ?? shape?.model;
  if (requestModel) out.requestModel = requestModel;
  if (doc?.stream === true || shape?.streamed) out.streamed = true;
  return out;
}

export interface GenAiResponseTap {
  /** A whole (non-streamed) JSON response. */
  json(doc: unknown): void;
  /** One SSE event as it passes: the `event:` name (if any) and the joined `data:` lines. */
  sseEvent(event: string | undefined, data: string): void;
  /** What was learnt so far, over what the request said (base): the response's id, model, usage and finish reasons win. */
  result(base?: AuditGenAi): AuditGenAi;
}

/**
 * A key that can only matter when its value is present: a `usage`/`usageMetadata` object or a
 * finish/stop reason string (OpenAI sends `"usage":null` and `"finish_reason":null` in every
 * chunk). A quote inside a JSON string is escaped, so a raw `"key":` is a key; a false positive
 * would only cost one JSON.parse.
 */
const CARRIES_END = /"(?:usage|usageMetadata|finish_reason|finishReason|stop_reason)"\s*:\s*[{"]/;

/** Events that never carry ids, usage or finish reasons (the bulk of every stream). */
const SKIP_EVENTS = new Set(['ping', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_stop']);
/** Events that carry the response envelope: the first and the last of each stream kind. */
const PARSE_EVENTS = new Set([
  'message_start',
  'message_delta',
  'response.created',
  'response.completed',
  'response.incomplete',
  'response.failed',
  'error',
]);

/**
 * base's fields, then what the response said, field by field: object spreads of these small
 * objects of varying shapes take V8's slow path (`{ ...request, ...response }` measured 3.5 µs, this
 * under 0.2 µs). Fields left undefined are absent.
 */
function merged(base: AuditGenAi | undefined, out: Partial<AuditGenAi>, finish: ReadonlyMap<number, string>): AuditGenAi {
  const r: AuditGenAi = {};
  const provider = base?.provider;
  const operation = base?.operation;
  const requestModel = base?.requestModel;
  const streamed = base?.streamed;
  if (provider !== undefined) r.provider = provider;
  if (operation !== undefined) r.operation = operation;
  if (requestModel !== undefined) r.requestModel = requestModel;
  if (streamed !== undefined) r.streamed = streamed;
  if (out.responseId !== undefined) r.responseId = out.responseId;
  if (out.responseModel !== undefined) r.responseModel = out.responseModel;
  if (out.inputTokens !== undefined) r.inputTokens = out.inputTokens;
  if (out.outputTokens !== undefined) r.outputTokens = out.outputTokens;
  if (finish.size === 1) r.finishReasons = [finish.values().next().value as string];
  else if (finish.size > 1) r.finishReasons = [...finish.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  return r;
}

/**
 * Collects response id, model, usage and finish reasons from the response.
 *
 * Cost: the data path calls sseEvent for every streamed event, and almost all of them are content
 * deltas. Measured on a 270-byte OpenAI chat chunk (Node 20), one CARRIES_END regex scan costs
 * about a seventh of JSON.parse (five separate indexOf calls cost as much as the parse). So a
 * stream is parsed only where something can be learnt: Anthropic and Responses API events are
 * chosen by event name (deltas are skipped without looking at the data); unnamed events (OpenAI
 * chat chunks, Gemini) are parsed until id and model are known, then only when CARRIES_END
 * matches. A 100-chunk chat stream is parsed 3 times (first, finish and usage chunks), not 100.
 */
export function createGenAiResponseTap(): GenAiResponseTap {
  const out: Partial<AuditGenAi> = {};
  // finish reason per choice index, reported in index order
  const finish = new Map<number, string>();

  const setUsage = (usage: unknown): void => {
    if (!isObj(usage)) return;
    // OpenAI chat/completions/embeddings: prompt_tokens (cached tokens included) / completion_tokens
    const prompt = count(usage.prompt_tokens);
    const completion = count(usage.completion_tokens);
    // Responses API and Anthropic: input_tokens / output_tokens. Anthropic reports cache reads
    // and writes beside input_tokens; OTel counts all input tokens, so they are added.
    const input = count(usage.input_tokens);
    const cached = (count(usage.cache_creation_input_tokens) ?? 0) + (count(usage.cache_read_input_tokens) ?? 0);
    const output = count(usage.output_tokens);
    if (prompt !== undefined) out.inputTokens = prompt;
    else if (input !== undefined) out.inputTokens = input + cached;
    if (completion !== undefined) out.outputTokens = completion;
    else if (output !== undefined) out.outputTokens = output;
  };

  const setGeminiUsage = (usage: unknown): void => {
    if (!isObj(usage)) return;
    const prompt = count(usage.promptTokenCount);
    const candidates = count(usage.candidatesTokenCount);
    const thoughts = count(usage.thoughtsTokenCount);
    if (prompt !== undefined) out.inputTokens = prompt;
    if (candidates !== undefined || thoughts !== undefined) out.outputTokens = (candidates ?? 0) + (thoughts ?? 0);
  };

  const setIdModel = (doc: Obj): void => {
    const id = str(doc.id) ?? str(doc.responseId);
    const model = str(doc.model) ?? str(doc.modelVersion);
    if (id) out.responseId = id;
    if (model) out.responseModel = model;
  };

  const choices = (list: unknown, key: 'finish_reason' | 'finishReason'): void => {
    if (!Array.isArray(list)) return;
    list.forEach((c, i) => {
      if (!isObj(c)) return;
      const reason = str(c[key]);
      if (reason) finish.set(typeof c.index === 'number' ? c.index : i, reason);
    });
  };

  /** A Responses API `response` object (whole response, or inside response.* events). */
  const responsesObject = (r: Obj): void => {
    setIdModel(r);
    setUsage(r.usage);
    // No finish_reason in this API: completed ends like `stop`, incomplete says why.
    const reason =
      r.status === 'completed'
        ? 'stop'
        : r.status === 'incomplete'
          ? (str(isObj(r.incomplete_details) ? r.incomplete_details.reason : undefined) ?? 'incomplete')
          : r.status === 'failed'
            ? 'error'
            : undefined;
    if (reason) finish.set(0, reason);
  };

  const document = (doc: unknown): void => {
    if (!isObj(doc)) return;
    switch (doc.type) {
      case 'message_start':
        if (isObj(doc.message)) document(doc.message);
        return;
      case 'message_delta': {
        setUsage(doc.usage);
        const reason = isObj(doc.delta) ? str(doc.delta.stop_reason) : undefined;
        if (reason) finish.set(0, reason);
        return;
      }
      case 'response.created':
      case 'response.in_progress':
      case 'response.completed':
      case 'response.incomplete':
      case 'response.failed':
        if (isObj(doc.response)) responsesObject(doc.response);
        return;
    }
    if (doc.object === 'response') return responsesObject(doc);
    setIdModel(doc);
    setUsage(doc.usage);
    setGeminiUsage(doc.usageMetadata);
    choices(doc.choices, 'finish_reason');
    choices(doc.candidates, 'finishReason');
    const stop = str(doc.stop_reason); // Anthropic message
    if (stop) finish.set(0, stop);
  };

  const parse = (data: string): void => {
    try {
      document(JSON.parse(data));
    } catch {
      /* not JSON: nothing to learn */
    }
  };

  const worthParsing = (event: string | undefined, data: string): boolean => {
    if (event !== undefined && event !== '' && event !== 'message') {
      if (SKIP_EVENTS.has(event)) return false;
      if (PARSE_EVENTS.has(event)) return true;
      if (event.startsWith('response.')) return false; // output_text.delta and friends
    }
    if (data.length === 0 || data[0] !== '{') return false; // [DONE], keep-alives, text
    if (out.responseId === undefined || out.responseModel === undefined) return true;
    return CARRIES_END.test(data);
  };

  return {
    json: (doc) => {
      try {
        document(doc);
      } catch {
        /* odd shapes are ignored, never thrown into the data path */
      }
    },
    sseEvent: (event, data) => {
      if (typeof data === 'string' && worthParsing(event, data.trimStart())) parse(data);
    },
    result: (base) => merged(base, out, finish),
  };
}
