// What one named route of one compiled policy needs per request (limits, maskers, credential
// headers, whether bodies are read), computed once per policy load and cached by policy object.
import { createTextMasker, type TextMasker } from '../../../common/masking/masker';
import type { CompiledPolicy } from '../../../common/policy/compile';
import { parseDuration, parseJsonPath, type JsonPathSegment } from '../../../common/policy/syntax';
import type { HttpTargetSpec, McpTargetSpec } from '../../../common/policy/types';
import { rulesReadBody } from '../request-view';
import { createScrubberSlot, type CredentialScrubber } from '../routes/credential-scrub';

export interface MaskPlan {
  maskers: Array<{ rule: string; masker: TextMasker; jsonPaths: JsonPathSegment[][] }>;
}

export interface TargetPlan {
  spec: HttpTargetSpec;
  base: URL;
  timeoutMs: number;
  maxBody: number;
  maxMasked: number;
  allowUnparseable: boolean;
  /** Request headers never forwarded: the agent's credentials (the target's own is injected). */
  credentialHeaders: ReadonlySet<string>;
  requestPlan: MaskPlan | null;
  responsePlan: MaskPlan | null;
  /** A rule on this target matches on request body fields, or request bodies are masked: read and parse the body. */
  needsBody: boolean;
  /** The scrubber for the credential values injected, rebuilt only when they change. */
  scrubberFor: (values: readonly string[]) => CredentialScrubber | undefined;
  /** An MCP target (routes/route-proxy.ts runs MCP_STAGES): its spec and the policy's pins by tool. */
  mcp?: {
    spec: McpTargetSpec;
    pins: ReadonlyMap<string, string>;
    /** What tool definitions are remembered under (ToolPins): the target and its URL, so a target moved to another server starts afresh. */
    pinScope: string;
  };
}

const MiB = 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 60_000;
/** Plans of MCP targets are cached under this prefix (no target name contains a NUL). */
const MCP_KEY = '\0mcp:';
const AGENT_CREDENTIALS = ['authorization', 'x-api-key', 'api-key', 'proxy-authorization'];

export class TargetPlans {
  private readonly plans = new WeakMap<CompiledPolicy, Map<string, TargetPlan>>();
  private readonly defaultMaxBody: number;
  private readonly defaultMaxMasked: number;

  constructor(
    limits: { maxRequestBodyBytes?: number; maxMaskedResponseBytes?: number } | undefined,
    private readonly hashKey: Buffer,
  ) {
    this.defaultMaxBody = limits?.maxRequestBodyBytes ?? 10 * MiB;
    this.defaultMaxMasked = limits?.maxMaskedResponseBytes ?? 10 * MiB;
  }

  /** The target's plan, or undefined when the policy has no HTTP route of that name. */
  get(policy: CompiledPolicy, name: string): TargetPlan | undefined {
    let perPolicy = this.plans.get(policy);
    if (!perPolicy) this.plans.set(policy, (perPolicy = new Map<string, TargetPlan>()));
    let tp = perPolicy.get(name);
    if (tp) return tp;
    const spec = policy.targets.get(name)?.http;
    if (!spec) return undefined;
    const requestPlan = this.maskPlan(policy, name, 'request');
    const credentialHeaders = new Set(AGENT_CREDENTIALS);
    if (spec.auth?.header) credentialHeaders.add(spec.auth.header.toLowerCase());
    tp = {
      spec,
      base: new URL(spec.baseUrl),
      timeoutMs: spec.timeout ? parseDuration(spec.timeout) : DEFAULT_TIMEOUT_MS,
      maxBody: spec.maxBodyBytes ?? this.defaultMaxBody,
      maxMasked: spec.maxBodyBytes ?? this.defaultMaxMasked,
      allowUnparseable: spec.unparseable === 'allow',
      credentialHeaders,
      requestPlan,
      responsePlan: this.maskPlan(policy, name, 'response'),
      needsBody: rulesReadBody(policy, name) || requestPlan !== null,
      scrubberFor: createScrubberSlot(),
    };
    perPolicy.set(name, tp);
    return tp;
  }

  /** The plan of an MCP target (`spec` holds its URL as baseUrl and its credential), or undefined. */
  getMcp(policy: CompiledPolicy, name: string): TargetPlan | undefined {
    let perPolicy = this.plans.get(policy);
    if (!perPolicy) this.plans.set(policy, (perPolicy = new Map<string, TargetPlan>()));
    const key = MCP_KEY + name;
    let tp = perPolicy.get(key);
    if (tp) return tp;
    const mcp = policy.targets.get(name)?.mcp;
    if (!mcp) return undefined;
    const spec: HttpTargetSpec = {
      baseUrl: mcp.url,
      credentialsSecret: mcp.credentialsSecret,
      auth: mcp.auth,
      timeout: mcp.timeout,
      maxBodyBytes: mcp.maxBodyBytes,
    };
    const credentialHeaders = new Set(AGENT_CREDENTIALS);
    if (spec.auth?.header) credentialHeaders.add(spec.auth.header.toLowerCase());
    tp = {
      spec,
      base: new URL(mcp.url),
      timeoutMs: spec.timeout ? parseDuration(spec.timeout) : DEFAULT_TIMEOUT_MS,
      maxBody: spec.maxBodyBytes ?? this.defaultMaxBody,
      maxMasked: spec.maxBodyBytes ?? this.defaultMaxMasked,
      allowUnparseable: false, // an MCP answer that cannot be read or masked is always refused
      credentialHeaders,
      requestPlan: this.maskPlan(policy, name, 'request'),
      responsePlan: this.maskPlan(policy, name, 'response'),
      needsBody: true, // every JSON-RPC message is judged
      scrubberFor: createScrubberSlot(),
      mcp: { spec: mcp, pins: new Map((mcp.pins ?? []).map((p) => [p.tool, p.fingerprint])), pinScope: `${name}\0${mcp.url}` },
    };
    perPolicy.set(key, tp);
    return tp;
  }

  private maskPlan(policy: CompiledPolicy, target: string, direction: 'request' | 'response'): MaskPlan | null {
    const maskers: MaskPlan['maskers'] = [];
    for (const s of policy.masking) {
      if (s.targets && !s.targets.includes(target)) continue;
      const dir = s.direction ?? 'response';
      if (dir !== direction && dir !== 'both') continue;
      const jsonPaths = (s.jsonPaths ?? []).map(parseJsonPath);
      if ((s.detectors ?? []).length === 0 && jsonPaths.length === 0) continue; // column-only rules are for SQL
      maskers.push({
        rule: s.name,
        masker: createTextMasker({ detectors: s.detectors ?? [], strategy: s.strategy ?? 'redact', hashKey: this.hashKey }),
        jsonPaths,
      });
    }
    return maskers.length > 0 ? { maskers } : null;
  }
}
