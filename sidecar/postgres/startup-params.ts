// Which startup parameters the agent may pass through to the real server. Anything that changes
// how the server lexes SQL (client_encoding, standard_conforming_strings) or reaches beyond the
// session (replication, options with arbitrary -c) could make the server see a different statement
// than the one we classified, so only a known-safe set passes.
const PASSTHROUGH = new Set([
  'application_name',
  'datestyle',
  'timezone',
  'intervalstyle',
  'extra_float_digits',
  'search_path',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'default_transaction_read_only',
  'default_transaction_isolation',
  'bytea_output',
  'client_min_messages',
  'row_security',
]);

/** Encodings in which every byte < 0x80 is the ASCII character, so quotes and backslashes cannot hide in multibyte sequences. */
const SAFE_ENCODINGS = new Set(['UTF8', 'UNICODE', 'SQLASCII']);

export function isSafeClientEncoding(value: string): boolean {
  return SAFE_ENCODINGS.has(value.toUpperCase().replace(/[-_\s]/g, ''));
}

export interface FilteredParams {
  params: Record<string, string>;
  error?: string;
}

function parseOptions(options: string): Array<[string, string]> | string {
  const out: Array<[string, string]> = [];
  const words = options.trim().split(/\s+/).filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    let w = words[i];
    if (w === '-c') w = words[++i] ?? '';
    else if (w.startsWith('-c')) w = w.slice(2);
    else if (w.startsWith('--')) w = w.slice(2);
    else return `unsupported startup option "${w}"`;
    const eq = w.indexOf('=');
    if (eq <= 0) return `malformed startup option "${w}"`;
    out.push([w.slice(0, eq).toLowerCase().replace(/-/g, '_'), w.slice(eq + 1)]);
  }
  return out;
}

export function filterStartupParams(input: Record<string, string>): FilteredParams {
  const params: Record<string, string> = {};
  const pairs: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(input)) {
    const key = k.toLowerCase();
    if (key === 'user' || key === 'database' || key.startsWith('_pq_.')) continue;
    if (key === 'replication') {
      if (/^(false|off|no|0)$/i.test(v)) continue;
      return { params, error: 'replication connections are not allowed through the sidecar' };
    }
    if (key === 'options') {
      const parsed = parseOptions(v);
      if (typeof parsed === 'string') return { params, error: parsed };
      pairs.push(...parsed);
      continue;
    }
    pairs.push([key, v]);
  }
  for (const [key, v] of pairs) {
    if (key === 'client_encoding') {
      if (!isSafeClientEncoding(v)) return { params, error: `client_encoding "${v}" is not allowed: use UTF8` };
      params.client_encoding = v;
    } else if (PASSTHROUGH.has(key)) {
      params[key] = v;
    } else {
      return { params, error: `startup parameter "${key}" is not allowed through the sidecar` };
    }
  }
  return { params };
}
