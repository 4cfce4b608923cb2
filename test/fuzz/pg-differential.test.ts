// The differential fuzzer (issue 10, "Proof"): hostile SQL and protocol sequences through the real
// sidecar to the real PostgreSQL, the database's effects and every byte the agent received checked
// against what the policy decided (see harness.ts for the oracle, generators.ts for the policy).
// Seeded and reproducible: FUZZ_SEED picks the programs, FUZZ_ITERATIONS how many random programs
// run (default 80, about 20 s), FUZZ_TIME_LIMIT_S stops early on time (`make fuzz` runs
// long); FUZZ_SHRINK_RUNS bounds the runs spent minimising each failure. A failure names the oracle
// that fired (its class), the families of statements involved, and the minimal sequence.
import fc from 'fast-check';
import { arbProgram, type Step } from './generators';
import { showProgram, tagsOf, useFuzzWorld } from './harness';
import { intEnv, POISONED, report, shrink } from './runner';

const SEED = intEnv('FUZZ_SEED', 20261207);
const ITERATIONS = intEnv('FUZZ_ITERATIONS', 80);
const TIME_LIMIT_MS = intEnv('FUZZ_TIME_LIMIT_S', 0) * 1000;

const fuzzWorld = useFuzzWorld();

test(
  'random hostile sequences through the sidecar (seeded; failures minimised)',
  async () => {
    const world = fuzzWorld();
    const started = Date.now();
    const deadline = TIME_LIMIT_MS > 0 ? started + TIME_LIMIT_MS : Infinity;
    const found = new Map<string, string>();
    const tally = new Map<string, number>();
    let runs = 0;
    let shrinkRuns = 0;
    const notes = new Map<string, { count: number; example: string }>();
    for (let round = 0; runs < ITERATIONS && Date.now() < deadline; round++) {
      const roundSeed = SEED + round;
      let failing: { program: Step[]; kinds: string[] } | undefined;
      const details = await fc.check(
        fc.asyncProperty(arbProgram, async (program) => {
          const r = await world.run(program);
          for (const n of r.notes) {
            const kind = n.includes('closed') ? 'closed by the sidecar' : 'no answer in time';
            const seen = notes.get(kind);
            if (seen) seen.count++;
            else notes.set(kind, { count: 1, example: `${n}\n${showProgram(program)}` });
          }
          for (const tag of tagsOf(program)) tally.set(tag, (tally.get(tag) ?? 0) + 1);
          const fresh = r.violations.map((v) => v.kind).filter((k) => !found.has(k));
          if (fresh.length === 0) return true;
          failing = { program, kinds: fresh };
          return false;
        }),
        {
          seed: roundSeed,
          numRuns: ITERATIONS - runs,
          endOnFailure: true, // minimised below, within a fixed budget
          ...(Number.isFinite(deadline)
            ? { interruptAfterTimeLimit: Math.max(1, deadline - Date.now()), markInterruptAsFailure: false }
            : {}),
        },
      );
      runs += details.numRuns;
      if (!failing) break;
      if (failing.kinds.includes(POISONED)) {
        // Every later program (and any minimising run) would run on a broken sidecar: report and stop.
        const r = await world.run([]).catch(() => undefined);
        found.set(
          POISONED,
          report(
            `random, FUZZ_SEED=${SEED} round ${round} (seed ${roundSeed}) run ${details.numRuns}; the run stopped here, later results would be unreliable`,
            failing.program,
            {
              violations: [{ kind: POISONED, detail: 'after this program a fresh connection was no longer policed' }],
              notes: r?.notes ?? [],
            },
          ),
        );
        for (const kind of failing.kinds)
          if (!found.has(kind))
            found.set(
              kind,
              report(`random, same program as ${POISONED}`, failing.program, {
                violations: [{ kind, detail: 'not minimised (the sidecar was broken)' }],
                notes: [],
              }),
            );
        break;
      }
      for (const kind of failing.kinds) {
        if (found.has(kind)) continue;
        const s = await shrink(world, failing.program, kind);
        shrinkRuns += s.runs;
        for (const v of s.result.violations) {
          if (!found.has(v.kind))
            found.set(
              v.kind,
              report(`random, FUZZ_SEED=${SEED} round ${round} (seed ${roundSeed}) run ${details.numRuns}`, s.program, s.result),
            );
        }
        if (!found.has(kind))
          found.set(
            kind,
            report(
              `random, FUZZ_SEED=${SEED} round ${round} (seed ${roundSeed}) run ${details.numRuns}; not reproduced after minimising`,
              failing.program,
              { violations: [{ kind, detail: 'see above' }], notes: [] },
            ),
          );
      }
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `fuzz random: FUZZ_SEED=${SEED}, ${runs} programs (+${shrinkRuns} minimising runs) in ${secs} s; families: ${[...tally.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}; ` +
        `connections (not failures): ${[...notes.entries()].map(([k, v]) => `${k} ${v.count}`).join(', ') || 'none closed or stuck'}; approvals approved ${world.approvals.approved}, denied ${world.approvals.denied}; ${found.size} failing class(es)` +
        (found.size ? `\n\n${[...found.values()].join('\n\n')}` : '') +
        (process.env.FUZZ_VERBOSE ? [...notes.entries()].map(([k, v]) => `\n\nfirst connection ${k}: ${v.example}`).join('') : ''),
    );
    expect([...found.values()]).toEqual([]);
  },
  TIME_LIMIT_MS > 0 ? TIME_LIMIT_MS + 300_000 : Math.max(300_000, ITERATIONS * 3_000),
);
