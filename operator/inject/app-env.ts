// Env for the app containers: each target's `env` points at the sidecar, SDK API keys become
// placeholders (the sidecar adds the real credential), and the proxy variables send everything else
// through the sidecar's forward proxy. Injected values win over what the manifest set: an agent
// that kept its own DATABASE_URL or OPENAI_API_KEY would walk around the sidecar.
import { PORTS } from '../../common/k8s/names';
import type { AccessPolicy, TargetSpec } from '../../common/policy/types';
import type { Container, EnvVar } from './k8s-types';

export const API_KEY_PLACEHOLDER = 'warden-injected-placeholder';
/** The forward proxy (and route base) on the sidecar's egress port. */
export function proxyUrl(egressPort: number = PORTS.egress): string {
  return `http://127.0.0.1:${egressPort}`;
}
export const NO_PROXY = '127.0.0.1,localhost,::1';

/** SDK base-URL variables whose API-key variable must hold a placeholder (the SDKs refuse to start without one). */
export const API_KEY_FOR: Readonly<Record<string, string>> = {
  OPENAI_BASE_URL: 'OPENAI_API_KEY',
  ANTHROPIC_BASE_URL: 'ANTHROPIC_API_KEY',
};

export interface TargetEnv {
  target: string;
  kind: 'postgres' | 'http' | 'mcp';
  name: string;
  value: string;
}

/**
 * postgres: any user, no password, no TLS on loopback (the sidecar answers SSLRequest with 'N'; the
 * upstream leg has its own TLS). The user name only labels the session.
 */
export function postgresUrl(listenPort: number, database: string): string {
  return `postgresql://agent@127.0.0.1:${listenPort}/${encodeURIComponent(database)}?sslmode=disable`;
}

/**
 * http: the route `http://127.0.0.1:15001/<target>`; the rest of the path is appended to the
 * target's baseUrl. The OpenAI SDKs expect OPENAI_BASE_URL to end in /v1 (their default is
 * https://api.openai.com/v1), so the route gets /v1 when the target's baseUrl does not already.
 */
export function routeUrl(target: TargetSpec, egressPort: number = PORTS.egress): string {
  const base = `${proxyUrl(egressPort)}/${encodeURIComponent(target.name)}`;
  if (target.env === 'OPENAI_BASE_URL' && target.http && !/\/v1\/?$/.test(safePath(target.http.baseUrl))) return `${base}/v1`;
  return base;
}

/** mcp: the agent's MCP endpoint `http://127.0.0.1:15001/<target>`, which the sidecar forwards to the target's url. */
export function mcpUrl(target: TargetSpec, egressPort: number = PORTS.egress): string {
  return `${proxyUrl(egressPort)}/${encodeURIComponent(target.name)}`;
}

function safePath(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return '';
  }
}

export function targetEnv(policy: AccessPolicy, egressPort: number = PORTS.egress): TargetEnv[] {
  const out: TargetEnv[] = [];
  for (const t of policy.spec.targets) {
    if (!t.env) continue;
    if (t.postgres)
      out.push({ target: t.name, kind: 'postgres', name: t.env, value: postgresUrl(t.postgres.listenPort, t.postgres.database) });
    else if (t.http) out.push({ target: t.name, kind: 'http', name: t.env, value: routeUrl(t, egressPort) });
    else if (t.mcp) out.push({ target: t.name, kind: 'mcp', name: t.env, value: mcpUrl(t, egressPort) });
  }
  return out;
}

/** Every variable the injector sets in app containers, in the order they are placed. */
export function appEnv(policy: AccessPolicy, egressPort: number = PORTS.egress): EnvVar[] {
  const env: EnvVar[] = targetEnv(policy, egressPort).map((t) => ({ name: t.name, value: t.value }));
  const set = new Set(env.map((e) => e.name));
  for (const e of [...env]) {
    const key = API_KEY_FOR[e.name];
    if (key !== undefined && !set.has(key)) {
      env.push({ name: key, value: API_KEY_PLACEHOLDER });
      set.add(key);
    }
  }
  const pairValue = (pair: ProxyPair, fallback: string): string =>
    env.find((e) => e.name === pair[0])?.value ?? env.find((e) => e.name === pair[1])?.value ?? fallback;
  const proxy = PROXY_PAIRS.map((pair) => pairValue(pair, proxyUrl(egressPort)));
  for (const [i, name] of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].entries()) {
    if (!set.has(name)) env.push({ name, value: proxy[i % 2] });
  }
  const noProxy = pairValue(NO_PROXY_PAIR, NO_PROXY);
  for (const name of NO_PROXY_PAIR) {
    if (!set.has(name)) env.push({ name, value: noProxy });
  }
  return env;
}

type ProxyPair = readonly [upper: string, lower: string];
/**
 * Clients disagree on which spelling wins (curl and Python read the lower case first, Go the upper
 * case), so both spellings of a variable always carry one value: a target that claims one spelling
 * sets the other too.
 */
const PROXY_PAIRS: readonly ProxyPair[] = [
  ['HTTP_PROXY', 'http_proxy'],
  ['HTTPS_PROXY', 'https_proxy'],
];
const NO_PROXY_PAIR: ProxyPair = ['NO_PROXY', 'no_proxy'];

/** Two targets claiming the two spellings of one proxy variable cannot both be honoured: why, or undefined. */
export function proxyEnvConflict(policy: AccessPolicy): string | undefined {
  const byName = new Map(targetEnv(policy).map((t) => [t.name, t.target]));
  for (const [upper, lower] of [...PROXY_PAIRS, NO_PROXY_PAIR]) {
    const a = byName.get(upper);
    const b = byName.get(lower);
    if (a !== undefined && b !== undefined) {
      return (
        `targets ${JSON.stringify(a)} and ${JSON.stringify(b)} set env ${upper} and ${lower}, which clients treat as one variable ` +
        `(some read one spelling, some the other); let one target set it`
      );
    }
  }
  return undefined;
}

/**
 * Sets `env` in one container: a variable the container already defines is replaced in place (a
 * secretKeyRef there is dropped with it); new ones go first, so the container's own `$(VAR)`
 * references to them still expand. Returns the names that replaced the container's own values.
 */
export function applyEnv(container: Container, env: readonly EnvVar[]): string[] {
  const existing = container.env ?? [];
  const wanted = new Map(env.map((e) => [e.name, e]));
  const placed = new Set<string>();
  const replaced = new Set<string>();
  const kept: EnvVar[] = [];
  for (const e of existing) {
    const w = wanted.get(e.name);
    if (w === undefined) {
      kept.push(e);
      continue;
    }
    if (e.value !== w.value || e.valueFrom !== undefined) replaced.add(e.name);
    // A name defined twice: the container gets the last definition, so every one is ours and
    // only the first place keeps it (a second Secret reference would hand the agent the real value).
    if (placed.has(e.name)) continue;
    placed.add(e.name);
    kept.push({ name: w.name, value: w.value });
  }
  container.env = [...env.filter((e) => !placed.has(e.name)).map((e) => ({ ...e })), ...kept];
  return [...replaced];
}
