// Shared by the fuzz suites: settings from the environment, failure reports, minimisation.
import type { Step } from './generators';
import { showProgram, tagsOf, type FuzzWorld, type RunResult } from './harness';

export function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, not "${v}"`);
  return n;
}

/** Runs spent minimising one failure (FUZZ_SHRINK_RUNS). */
export const SHRINK_RUNS = intEnv('FUZZ_SHRINK_RUNS', 30);

/**
 * The oracle that says the sidecar itself is broken for everyone (a fresh connection is no longer
 * policed): every later result in this process is unreliable, so the run stops there.
 */
export const POISONED = 'policy-off-after-program';

export function report(title: string, program: Step[], r: RunResult): string {
  return [
    `CLASS ${r.violations.map((v) => v.kind).join(' + ')}  [${title}; families: ${tagsOf(program).join(', ')}]`,
    ...r.violations.map((v) => `  ${v.kind}: ${v.detail}`),
    ...(r.notes.length ? [`  notes: ${r.notes.join('; ')}`] : []),
    '  sequence (each step is followed by Sync and a marker query):',
    showProgram(program),
  ].join('\n');
}

/** Greedy, bounded minimisation: drop steps, then messages, while the same oracle still fires. */
export async function shrink(
  world: FuzzWorld,
  program: Step[],
  kind: string,
): Promise<{ program: Step[]; result: RunResult; runs: number }> {
  let best = program;
  let result = await world.run(best);
  let runs = 1;
  const still = async (candidate: Step[]): Promise<boolean> => {
    if (runs >= SHRINK_RUNS || candidate.length === 0 || candidate.some((s) => s.msgs.length === 0)) return false;
    runs++;
    const r = await world.run(candidate);
    if (!r.violations.some((v) => v.kind === kind)) return false;
    best = candidate;
    result = r;
    return true;
  };
  for (let i = best.length - 1; i >= 0; i--) await still(best.filter((_s, j) => j !== i));
  for (let i = 0; i < best.length; i++) {
    for (let m = best[i].msgs.length - 1; m >= 0; m--) {
      await still(
        best.map((s, j) =>
          j === i ? { ...s, msgs: s.msgs.filter((_x, k) => k !== m), families: s.families.filter((_x, k) => k !== m) } : s,
        ),
      );
    }
  }
  if (best.some((s) => s.conn === 1)) await still(best.map((s) => ({ ...s, conn: 0 as const })));
  return { program: best, result, runs };
}
