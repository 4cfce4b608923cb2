// Tool-definition pinning (the "rug pull", decision 2 of issue 13, per caller since red-team F10).
// Per caller (the identity's subject), per scope (the route keys it by target and URL), per sidecar
// process: the first listing of a tool THIS caller was shown is trusted, unless the policy pins it
// (then the pin, global, is authoritative from the first listing on). A tool whose definition as
// listed to this caller differs from what is trusted is "changed": hidden from this caller's
// listings and this caller's calls refused, until the policy pins the new fingerprint or the
// sidecar restarts. Another caller's listing never changes what this caller is judged against (a
// server whose listing depends on what the agent sends cannot be used by one caller to get the
// others' calls refused). A call to a tool this caller never listed is judged by rules only.
//
// Bounded (a hostile server or caller cannot grow it without limit): tool names over
// MAX_TOOL_NAME_LENGTH are refused (the MCP spec's SHOULD); at most `tools` tools per caller and
// scope and at most `bytes` bytes over all callers, a listing past either is refused (fail closed);
// at most `callers` callers, the least recently seen forgotten first, so its next listing is
// trusted afresh. The byte bound never forgets anyone: a server able to fill it through one caller's
// listings would otherwise wipe the others' first-seen definitions and then change them unnoticed.

export const MAX_PINNED_TOOLS = 10_000;
export const MAX_PIN_CALLERS = 256;
export const MAX_PIN_BYTES = 32 * 1024 * 1024;
/** The MCP spec: tool names SHOULD be 1 to 128 characters. */
export const MAX_TOOL_NAME_LENGTH = 128;
/** What one remembered tool costs beyond its strings (map entry, object), for the byte bound. */
const ENTRY_OVERHEAD = 96;

export type PinStatus = { changed: false } | { changed: true; expected: string; actual: string; pinned: boolean };

export interface PinLimits {
  /** Tools per caller and scope. */
  tools: number;
  /** Callers remembered (least recently seen forgotten first). */
  callers: number;
  /** Bytes over all callers (names, fingerprints, scopes and per-entry overhead). */
  bytes: number;
}

const DEFAULT_LIMITS: PinLimits = { tools: MAX_PINNED_TOOLS, callers: MAX_PIN_CALLERS, bytes: MAX_PIN_BYTES };

export class PinLimitError extends Error {
  constructor(
    scope: string,
    readonly limit: number,
    readonly unit: 'tools' | 'bytes' = 'tools',
  ) {
    super(
      unit === 'tools'
        ? `more than ${limit} tools listed in ${JSON.stringify(scope)}; the sidecar pins at most ${limit} per target`
        : `the tools listed in ${JSON.stringify(scope)} need more than the ${limit} bytes the sidecar keeps for pinning`,
    );
  }
}

export class ToolNameError extends Error {
  constructor(readonly length: number) {
    super(`it lists a tool whose name has ${length} characters; the sidecar takes at most ${MAX_TOOL_NAME_LENGTH}`);
  }
}

interface Seen {
  /** The definition trusted on first listing. */
  first: string;
  /** The definition listed last. */
  current: string;
}

interface CallerPins {
  scopes: Map<string, Map<string, Seen>>;
  bytes: number;
}

const OK: PinStatus = { changed: false };

export class ToolPins {
  /** By caller; Map order is recency (least recently seen first). */
  private readonly callers = new Map<string, CallerPins>();
  private bytes = 0;
  private readonly limits: PinLimits;

  constructor(limits: Partial<PinLimits> | number = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...(typeof limits === 'number' ? { tools: limits } : limits) };
  }

  /**
   * A tool as a listing shows it to caller; pin is the policy's fingerprint for it, if any.
   * Throws ToolNameError for a name over MAX_TOOL_NAME_LENGTH, PinLimitError past the other bounds.
   */
  observe(scope: string, caller: string, tool: string, fingerprint: string, pin: string | undefined): PinStatus {
    if (tool.length > MAX_TOOL_NAME_LENGTH) throw new ToolNameError(tool.length);
    const mine = this.touch(caller);
    let tools = mine.scopes.get(scope);
    const seen = tools?.get(tool);
    if (seen) {
      this.grow(mine, fingerprint.length - seen.current.length, scope);
      seen.current = fingerprint;
      return status(seen, pin);
    }
    if ((tools?.size ?? 0) >= this.limits.tools) throw new PinLimitError(scope, this.limits.tools);
    this.grow(mine, (tools ? 0 : scope.length + ENTRY_OVERHEAD) + tool.length + 2 * fingerprint.length + ENTRY_OVERHEAD, scope);
    if (!tools) mine.scopes.set(scope, (tools = new Map<string, Seen>()));
    const added: Seen = { first: fingerprint, current: fingerprint };
    tools.set(tool, added);
    return status(added, pin);
  }

  /** A call by caller: undefined when this caller was never shown the tool (rules alone judge it). */
  check(scope: string, caller: string, tool: string, pin: string | undefined): PinStatus | undefined {
    const seen = this.callers.get(caller)?.scopes.get(scope)?.get(tool);
    return seen ? status(seen, pin) : undefined;
  }

  /** Bytes held (for tests and metrics). */
  get size(): { callers: number; bytes: number } {
    return { callers: this.callers.size, bytes: this.bytes };
  }

  /** The caller's state, now the most recently seen; the least recently seen forgotten past the bound. */
  private touch(caller: string): CallerPins {
    let mine = this.callers.get(caller);
    if (mine) this.callers.delete(caller);
    else {
      mine = { scopes: new Map(), bytes: caller.length + ENTRY_OVERHEAD };
      this.bytes += mine.bytes;
      while (this.callers.size >= this.limits.callers) this.forgetOldest();
    }
    this.callers.set(caller, mine);
    return mine;
  }

  /** Accounts delta more bytes to caller; past the byte bound the listing is refused (nobody is forgotten). */
  private grow(mine: CallerPins, delta: number, scope: string): void {
    if (this.bytes + delta > this.limits.bytes) throw new PinLimitError(scope, this.limits.bytes, 'bytes');
    mine.bytes += delta;
    this.bytes += delta;
  }

  private forgetOldest(): void {
    const oldest = this.callers.keys().next();
    if (oldest.done) return;
    this.bytes -= this.callers.get(oldest.value)!.bytes;
    this.callers.delete(oldest.value);
  }
}

function status(seen: Seen, pin: string | undefined): PinStatus {
  const expected = pin ?? seen.first;
  return seen.current === expected ? OK : { changed: true, expected, actual: seen.current, pinned: pin !== undefined };
}
