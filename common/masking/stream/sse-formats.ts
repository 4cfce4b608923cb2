// Where the streamed text lives in the LLM event formats we know, and how to make a new event
// that carries more of it. Pure functions over one parsed event; sse.ts keeps the state.
//
//   OpenAI chat.completions  data: {"choices":[{"index":0,"delta":{"content":"..."},"finish_reason":null}]}
//                            delta.content / refusal / reasoning_content / reasoning,
//                            delta.tool_calls[k].function.arguments; a choice ends with finish_reason
//   OpenAI Responses API     {"type":"response.output_text.delta","item_id":..,"output_index":..,
//                            "content_index":..,"delta":"..."}, ends with the matching ".done"
//                            (also refusal, function_call_arguments, reasoning_text,
//                            reasoning_summary_text); response.completed/failed/incomplete end all
//   Anthropic Messages       event: content_block_delta  {"index":i,"delta":{"type":"text_delta","text":..}}
//                            (input_json_delta.partial_json, thinking_delta.thinking);
//                            content_block_stop ends block i, message_stop ends all
//   OpenAI legacy completions {"choices":[{"index":0,"text":"...","finish_reason":null}]}
//   anything else (generic)  Gemini {"candidates":[{"content":{"parts":[{"text":".."}]},"finishReason":..}]},
//                            TGI {"token":{"text":".."},"generated_text":null}, Ollama NDJSON
//                            {"message":{"content":".."},"done":false} / {"response":"..","done":false},
//                            and formats nobody modelled: every string under a text-like key
//                            (GENERIC_TEXT_KEYS) is a slot named by its path; an object with a
//                            non-null finish_reason/finishReason ends the slots below it, and
//                            `done: true` or a final TGI event (generated_text or details set)
//                            ends all. The flush event is a copy of the slot's latest event with
//                            the other text fields emptied and its end markers cleared.

export type SseFormat = 'auto' | 'openai' | 'anthropic';

type Json = Record<string, unknown>;

/** One piece of streamed text inside an event, with a setter into that (mutable) event. */
export interface TextField {
  slot: string;
  text: string;
  owner: Json;
  key: string;
  /** Build a new event for this slot carrying `text`, shaped like this one. */
  synth: (text: string) => SynthEvent;
}

export interface SynthEvent {
  event: string | null;
  data: Json;
}

export interface EventPlan {
  fields: TextField[];
  /** Slot-key prefixes whose text ends at this event (flush before it). '' = every slot. */
  ends: string[];
  /** Responses API event: carries a sequence_number the caller renumbers. */
  sequenced: boolean;
}

const EMPTY: EventPlan = { fields: [], ends: [], sequenced: false };

export function planEvent(obj: unknown, event: string | null, format: SseFormat): EventPlan {
  if (!isObj(obj)) return EMPTY;
  if (format !== 'anthropic') {
    if (Array.isArray(obj.choices)) return planChat(obj);
    if (typeof obj.type === 'string' && obj.type.startsWith('response.')) return planResponses(obj);
  }
  if (format !== 'openai' && typeof obj.type === 'string' && ANTHROPIC_TYPES.has(obj.type)) return planAnthropic(obj, event);
  return planGeneric(obj, event);
}

const ANTHROPIC_TYPES: ReadonlySet<string> = new Set([
  'message_start',
  'message_delta',
  'message_stop',
  'content_block_start',
  'content_block_delta',
  'content_block_stop',
  'ping',
  'error',
]);

/** Keys whose string values are streamed text in formats not modelled above. */
// `completion`: Anthropic's legacy Text Completions stream; `generation` (Llama, Cohere) and
// `outputText` (Titan) as Bedrock streams them, also behind gateways.
export const GENERIC_TEXT_KEYS: ReadonlySet<string> = new Set([
  'text',
  'content',
  'response',
  'delta',
  'partial_json',
  'arguments',
  'thinking',
  'reasoning',
  'output_text',
  'completion',
  'generation',
  'outputText',
]);
/** Deepest nesting searched for text fields (Gemini's is 5). */
const GENERIC_MAX_DEPTH = 8;

function planGeneric(obj: Json, event: string | null): EventPlan {
  const fields: TextField[] = [];
  const ends: string[] = [];
  if (obj.done === true || typeof obj.generated_text === 'string' || (obj.details !== null && obj.details !== undefined)) ends.push('g:');
  const template =
    (slot: string): ((t: string) => SynthEvent) =>
    (t) => {
      const copy = JSON.parse(JSON.stringify(obj)) as Json;
      fillGeneric(copy, 'g:', slot, t, 0);
      return { event, data: copy };
    };
  const visit = (node: Json | unknown[], path: string, depth: number): void => {
    if (depth > GENERIC_MAX_DEPTH) return;
    if (
      !Array.isArray(node) &&
      ((node.finish_reason !== null && node.finish_reason !== undefined) || (node.finishReason !== null && node.finishReason !== undefined))
    ) {
      ends.push(path);
    }
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    for (const k of keys) {
      const v = (node as Record<string | number, unknown>)[k];
      const p = `${path}${String(k)}.`;
      if (typeof v === 'string' && !Array.isArray(node) && GENERIC_TEXT_KEYS.has(k as string)) {
        const slot = p.slice(0, -1);
        fields.push({ slot, text: v, owner: node, key: k as string, synth: template(slot) });
      } else if (typeof v === 'object' && v !== null) {
        visit(v as Json | unknown[], p, depth + 1);
      }
    }
  };
  visit(obj, 'g:', 0);
  return { fields, ends, sequenced: false };
}

/** In a copy of an event: the slot's text field set to text, every other text field emptied, end markers cleared. */
function fillGeneric(node: Json | unknown[], path: string, slot: string, text: string, depth: number): void {
  if (depth > GENERIC_MAX_DEPTH) return;
  if (!Array.isArray(node)) {
    if (node.finish_reason !== undefined) node.finish_reason = null;
    delete node.finishReason;
    if (node.done === true) node.done = false;
    if (depth === 0) {
      if (typeof node.generated_text === 'string') node.generated_text = null;
      if (node.details !== undefined) node.details = null;
    }
  }
  const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
  for (const k of keys) {
    const v = (node as Record<string | number, unknown>)[k];
    const p = `${path}${String(k)}.`;
    if (typeof v === 'string' && !Array.isArray(node) && GENERIC_TEXT_KEYS.has(k as string)) {
      node[k as string] = p.slice(0, -1) === slot ? text : '';
    } else if (typeof v === 'object' && v !== null) {
      fillGeneric(v as Json | unknown[], p, slot, text, depth + 1);
    }
  }
}

const CHAT_TEXT_KEYS = ['content', 'refusal', 'reasoning_content', 'reasoning'];

function planChat(obj: Json): EventPlan {
  const fields: TextField[] = [];
  const ends: string[] = [];
  const { choices: _choices, usage: _usage, ...top } = obj;
  (obj.choices as unknown[]).forEach((choice, pos) => {
    if (!isObj(choice)) return;
    const idx = typeof choice.index === 'number' ? choice.index : pos;
    const chunk = (delta: Json): SynthEvent => ({ event: null, data: { ...top, choices: [{ index: idx, delta, finish_reason: null }] } });
    if (typeof choice.text === 'string') {
      // Legacy completions: the choice itself carries the text.
      fields.push({
        slot: `oc:${idx}:text`,
        text: choice.text,
        owner: choice,
        key: 'text',
        synth: (t) => ({ event: null, data: { ...top, choices: [{ index: idx, text: t, finish_reason: null }] } }),
      });
    }
    const delta = choice.delta;
    if (isObj(delta)) {
      for (const key of CHAT_TEXT_KEYS) {
        if (typeof delta[key] === 'string') {
          fields.push({ slot: `oc:${idx}:${key}`, text: delta[key], owner: delta, key, synth: (t) => chunk({ [key]: t }) });
        }
      }
      if (Array.isArray(delta.tool_calls)) {
        delta.tool_calls.forEach((call, k) => {
          if (!isObj(call) || !isObj(call.function) || typeof call.function.arguments !== 'string') return;
          const ti = typeof call.index === 'number' ? call.index : k;
          fields.push({
            slot: `oc:${idx}:tool:${ti}`,
            text: call.function.arguments,
            owner: call.function,
            key: 'arguments',
            synth: (t) => chunk({ tool_calls: [{ index: ti, function: { arguments: t } }] }),
          });
        });
      }
    }
    if (choice.finish_reason !== null && choice.finish_reason !== undefined) ends.push(`oc:${idx}:`);
  });
  return { fields, ends, sequenced: false };
}

const RESPONSES_DELTAS = [
  'response.output_text',
  'response.refusal',
  'response.function_call_arguments',
  'response.reasoning_text',
  'response.reasoning_summary_text',
  'response.custom_tool_call_input',
];

function planResponses(obj: Json): EventPlan {
  const type = obj.type as string;
  const sequenced = typeof obj.sequence_number === 'number';
  if (type === 'response.completed' || type === 'response.failed' || type === 'response.incomplete') {
    return { fields: [], ends: ['r:'], sequenced };
  }
  const dot = type.lastIndexOf('.');
  const family = type.slice(0, dot);
  if (!RESPONSES_DELTAS.includes(family)) return { fields: [], ends: [], sequenced };
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- upstream JSON of any shape makes the slot key; only equality matters
  const slot = `r:${family}:${String(obj.item_id)}:${String(obj.output_index)}:${String(obj.content_index ?? obj.summary_index ?? '')}`;
  const kind = type.slice(dot + 1);
  if (kind === 'done') return { fields: [], ends: [slot], sequenced };
  if (kind !== 'delta' || typeof obj.delta !== 'string') return { fields: [], ends: [], sequenced };
  const template = { ...obj };
  return {
    fields: [{ slot, text: obj.delta, owner: obj, key: 'delta', synth: (t) => ({ event: null, data: { ...template, delta: t } }) }],
    ends: [],
    sequenced,
  };
}

const ANTHROPIC_DELTA_KEYS: ReadonlyMap<string, string> = new Map([
  ['text_delta', 'text'],
  ['input_json_delta', 'partial_json'],
  ['thinking_delta', 'thinking'],
]);

function planAnthropic(obj: Json, event: string | null): EventPlan {
  const idx = typeof obj.index === 'number' ? obj.index : 0;
  if (obj.type === 'content_block_stop') return { fields: [], ends: [`a:${idx}:`], sequenced: false };
  if (obj.type === 'message_stop') return { fields: [], ends: ['a:'], sequenced: false };
  if (obj.type !== 'content_block_delta' || !isObj(obj.delta) || typeof obj.delta.type !== 'string') return EMPTY;
  const dtype = obj.delta.type;
  const key = ANTHROPIC_DELTA_KEYS.get(dtype);
  if (key === undefined || typeof obj.delta[key] !== 'string') return EMPTY;
  return {
    fields: [
      {
        slot: `a:${idx}:${key}`,
        text: obj.delta[key],
        owner: obj.delta,
        key,
        synth: (t) => ({
          event: event ?? 'content_block_delta',
          data: { type: 'content_block_delta', index: idx, delta: { type: dtype, [key]: t } },
        }),
      },
    ],
    ends: [],
    sequenced: false,
  };
}

function isObj(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
