// The one hop-by-hop filter of the HTTP egress port, for both the named routes and the forward
// proxy, both directions: RFC 9110 §7.6.1 hop-by-hop headers, every header a Connection header
// names, every `proxy-*` header (proxy credentials and challenges are for this hop only), and
// the headers the proxy derives itself (host, expect).

/** Never forwarded, either way. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
  'host', // re-derived from the upstream URL
  'expect', // 100-continue is answered by this proxy
]);

type Headers = Record<string, string | string[] | undefined>;

function dropped(name: string, connectionNamed: ReadonlySet<string> | undefined, alsoDrop: ReadonlySet<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || (connectionNamed?.has(name) ?? false) || (alsoDrop?.has(name) ?? false);
}

function connectionNames(values: Iterable<string>): Set<string> | undefined {
  let out: Set<string> | undefined;
  for (const v of values) for (const n of v.split(',')) (out ??= new Set()).add(n.trim().toLowerCase());
  return out;
}

/** h (node's parsed headers, lower-case names) without hop-by-hop headers and without alsoDrop. */
export function endToEndHeaders(h: Headers, alsoDrop?: ReadonlySet<string>): Record<string, string | string[]> {
  const conn = h['connection'];
  // `Connection: keep-alive` (what most clients send) names only a header that is dropped anyway: no set to build.
  const named =
    conn === undefined || (typeof conn === 'string' && conn.length === 10 && conn.toLowerCase() === 'keep-alive')
      ? undefined
      : connectionNames(Array.isArray(conn) ? conn : [conn]);
  const out: Record<string, string | string[]> = {};
  for (const k of Object.keys(h)) {
    const v = h[k];
    if (v === undefined || dropped(k, named, alsoDrop)) continue;
    out[k] = v;
  }
  return out;
}

/** The same filter over raw headers ([name, value, ...], case kept), repeated headers kept as arrays. */
export function endToEndRawHeaders(raw: readonly string[], alsoDrop?: ReadonlySet<string>): Record<string, string | string[]> {
  const conn: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === 'connection') conn.push(raw[i + 1]);
  const named = connectionNames(conn);
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (dropped(name, named, alsoDrop)) continue;
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1] : Array.isArray(prev) ? [...prev, raw[i + 1]] : [prev, raw[i + 1]];
  }
  return out;
}
