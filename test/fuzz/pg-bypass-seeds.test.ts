// The bypasses issue 10 lists (seeds.ts), each run through the real sidecar to the real
// PostgreSQL under the differential oracle (harness.ts). Its own file, so a seed that breaks the
// sidecar for everyone (parser poisoning) cannot spoil the random phase's results.
import { useFuzzWorld } from './harness';
import { POISONED, report } from './runner';
import { SEEDS } from './seeds';

const fuzzWorld = useFuzzWorld();

test(`seeded with the bypasses of issue 10 (${SEEDS.length} programs)`, async () => {
  const world = fuzzWorld();
  const failures: string[] = [];
  const started = Date.now();
  let poisonedBy: string | undefined;
  for (const seed of SEEDS) {
    const r = await world.run(seed.program);
    const title = poisonedBy ? `${seed.name}; UNRELIABLE: run after "${poisonedBy}" broke the sidecar for everyone` : seed.name;
    if (r.violations.length > 0) failures.push(report(title, seed.program, r));
    if (!poisonedBy && r.violations.some((v) => v.kind === POISONED)) poisonedBy = seed.name;
  }
  console.log(
    `fuzz seeds: ${SEEDS.length} programs in ${((Date.now() - started) / 1000).toFixed(1)} s, ${failures.length} failing; approvals approved ${world.approvals.approved}, denied ${world.approvals.denied}` +
      (failures.length ? `\n\n${failures.join('\n\n')}` : ''),
  );
  expect(failures).toEqual([]);
}, 300_000);
