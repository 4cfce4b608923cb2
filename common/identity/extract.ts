// Where a caller's token travels, per protocol. Pure helpers: no verification happens here.
//
// HTTP (named routes and the forward proxy):
//   - `Proxy-Authorization: Bearer <jwt>`, meant for the proxy itself and taken first;
//   - `Proxy-Authorization: Basic base64(<anything>:<jwt>)`, the token as the password: this is
//     how ordinary HTTP clients send proxy credentials (HTTP_PROXY=http://agent:<jwt>@127.0.0.1:15001);
//   - `Authorization: Bearer <jwt>`.
//   The sidecar must strip whichever header carried the token before forwarding upstream.
//
// PostgreSQL: the token is the password. The sidecar answers the startup message with
// AuthenticationCleartextPassword (safe here: the agent talks to the sidecar over loopback inside
// the pod), reads the PasswordMessage, and passes its text to `tokenFromPassword`; the user name
// is not trusted for identity. A missing or invalid token ends the connection with an
// ErrorResponse, SQLSTATE 28P01 (invalid_password), whose message names the failed check.
// Clients set it like any password: PGPASSWORD=<jwt>, or postgres://agent:<jwt>@127.0.0.1:15432/db.

/** Node's IncomingHttpHeaders (lower-case keys), a plain record, or a fetch `Headers`. */
export type HeaderSource = Record<string, string | string[] | undefined> | { get(name: string): string | null };

/** The bearer token a request carries for the sidecar, or undefined when it carries none. */
export function bearerFromHeaders(headers: HeaderSource): string | undefined {
  const proxy = header(headers, 'proxy-authorization');
  if (proxy !== undefined) {
    const bearer = parseBearer(proxy);
    if (bearer !== undefined) return bearer;
    const basic = parseBasicPassword(proxy);
    if (basic !== undefined) return basic;
  }
  const auth = header(headers, 'authorization');
  return auth === undefined ? undefined : parseBearer(auth);
}

/** The token carried as a PostgreSQL password (PasswordMessage text), or undefined when empty. */
export function tokenFromPassword(password: string | undefined | null): string | undefined {
  if (typeof password !== 'string') return undefined;
  const t = password.trim();
  return t === '' ? undefined : t;
}

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const v = (headers as { get(name: string): string | null }).get(name);
    return v === null ? undefined : v;
  }
  const rec = headers as Record<string, string | string[] | undefined>;
  let v = rec[name];
  if (v === undefined) {
    const key = Object.keys(rec).find((k) => k.toLowerCase() === name);
    v = key === undefined ? undefined : rec[key];
  }
  if (Array.isArray(v)) return v.length === 1 ? v[0] : undefined; // repeated credentials are ambiguous
  return v;
}

/** The token of an `Authorization: Bearer TOKEN` value, or undefined. */
export function parseBearer(value: string): string | undefined {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(value);
  return m ? m[1] : undefined;
}

function parseBasicPassword(value: string): string | undefined {
  const m = /^\s*Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(value);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const password = decoded.slice(colon + 1).trim();
  return password === '' ? undefined : password;
}
