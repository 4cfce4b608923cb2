// Top self-time functions of a V8 .cpuprofile (as written by `node --cpu-prof`, e.g. the sidecar's
// under BENCH_PROFILE=1): `node dist-dev/bench/profile-top.js FILE.cpuprofile [N]`.
import * as fs from 'node:fs';
import * as path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time per function (name + file:line), as a share of the busy (non-idle) time. */
export function topSelf(profile: Profile, n = 25, by: 'function' | 'file' = 'function'): Array<{ name: string; ms: number; pct: number }> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample; charge it to this sample's node.
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  let total = 0;
  const byName = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') continue;
    total += us;
    const file = cf.url
      ? cf.url
          .replace(/^file:\/\//, '')
          .replace(/^.*\/node_modules\//, 'node_modules/')
          .replace(/^\/.*\/(dist(?:-dev)?)\//, '$1/')
      : '';
    const name =
      by === 'file'
        ? file.replace(/^node:.*/, 'node: (core modules)') || `(native/VM: ${cf.functionName || 'anonymous'})`
        : `${cf.functionName || '(anonymous)'} ${file ? `${file}:${cf.lineNumber + 1}` : ''}`.trim();
    byName.set(name, (byName.get(name) ?? 0) + us);
  }
  return [...byName.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: us / 1000, pct: (100 * us) / total }));
}

if (require.main === module) {
  const [file, count] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist-dev/bench/profile-top.js FILE.cpuprofile [N]\n');
    process.exit(2);
  }
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const busy = topSelf(profile, 1e9).reduce((a, r) => a + r.ms, 0);
  process.stdout.write(
    `${path.basename(file)}: ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s profiled, ${(busy / 1000).toFixed(1)} s busy (percentages are of busy time)\n`,
  );
  process.stdout.write('\nBy function (self time):\n');
  for (const r of topSelf(profile, Number(count ?? 25)))
    process.stdout.write(`${r.ms.toFixed(0).padStart(8)} ms ${r.pct.toFixed(1).padStart(5)}%  ${r.name}\n`);
  process.stdout.write('\nBy file (self time):\n');
  for (const r of topSelf(profile, 15, 'file'))
    process.stdout.write(`${r.ms.toFixed(0).padStart(8)} ms ${r.pct.toFixed(1).padStart(5)}%  ${r.name}\n`);
}
