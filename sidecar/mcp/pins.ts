// Tool-definition pinning (the "rug pull", decision 2 of issue 13). Per scope (the route keys it
// by target and URL), per sidecar process: the first listing of a tool is trusted, unless the
// policy pins it (then the pin is authoritative from the first listing on). A tool whose listed
// definition differs from what is trusted is "changed": hidden from listings and its calls refused
// until the policy pins the new fingerprint or the sidecar restarts. A call to a tool never listed
// is judged by rules only. Bounded: at most MAX_PINNED_TOOLS tools per scope; a listing past that
// is refused (fail closed).

export const MAX_PINNED_TOOLS = 10_000;

export type PinStatus = { changed: false } | { changed: true; expected: string; actual: string; pinned: boolean };

export class PinLimitError extends Error {
  constructor(
    scope: string,
    readonly limit: number,
  ) {
    super(`more than ${limit} tools listed in ${JSON.stringify(scope)}; the sidecar pins at most ${limit} per target`);
  }
}

interface Seen {
  /** The definition trusted on first listing. */
  first: string;
  /** The definition listed last. */
  current: string;
}

const OK: PinStatus = { changed: false };

export class ToolPins {
  private readonly targets = new Map<string, Map<string, Seen>>();

  constructor(private readonly limit = MAX_PINNED_TOOLS) {}

  /** A tool as a listing shows it; pin is the policy's fingerprint for it, if any. Throws PinLimitError past the bound. */
  observe(target: string, tool: string, fingerprint: string, pin: string | undefined): PinStatus {
    let tools = this.targets.get(target);
    if (!tools) this.targets.set(target, (tools = new Map<string, Seen>()));
    const seen = tools.get(tool);
    if (seen) seen.current = fingerprint;
    else {
      if (tools.size >= this.limit) throw new PinLimitError(target, this.limit);
      tools.set(tool, { first: fingerprint, current: fingerprint });
    }
    return status(tools.get(tool)!, pin);
  }

  /** A call: undefined when the tool was never listed (rules alone judge it). */
  check(target: string, tool: string, pin: string | undefined): PinStatus | undefined {
    const seen = this.targets.get(target)?.get(tool);
    return seen ? status(seen, pin) : undefined;
  }
}

function status(seen: Seen, pin: string | undefined): PinStatus {
  const expected = pin ?? seen.first;
  return seen.current === expected ? OK : { changed: true, expected, actual: seen.current, pinned: pin !== undefined };
}
