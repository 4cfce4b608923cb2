import * as fs from 'node:fs';
import * as path from 'node:path';

// V8 must see --liftoff-only before the parser worker compiles libpg-query's WASM: sidecar/main.ts
// imports runtime-flags before anything else (it is what keeps the parser's TurboFan re-compile,
// ~95 MB of RSS, out of the sidecar).
test('sidecar/main.ts imports ./runtime-flags first', () => {
  const src = fs.readFileSync(path.join(__dirname, 'main.ts'), 'utf8');
  const firstImport = /^import .*$/m.exec(src)?.[0];
  expect(firstImport).toBe("import './runtime-flags';");
});

describe('runtime flags', () => {
  const load = (env: Record<string, string | undefined>): string[] => {
    const calls: string[] = [];
    const saved = { ...process.env };
    Object.assign(process.env, env);
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const v8 = require('node:v8') as typeof import('node:v8');
        const spy = jest.spyOn(v8, 'setFlagsFromString').mockImplementation((f: string) => void calls.push(f));
        try {
          // eslint-disable-next-line @typescript-eslint/no-require-imports
          require('./runtime-flags');
        } finally {
          spy.mockRestore();
        }
      });
    } finally {
      process.env = saved;
    }
    return calls;
  };

  test('the shipped defaults: baseline WASM compiler only, heaps grow by 10% between full GCs', () => {
    expect(load({ WARDEN_WASM_TIERUP: undefined, WARDEN_HEAP_GROWING_PERCENT: undefined })).toEqual([
      '--liftoff-only',
      '--heap-growing-percent=10',
    ]);
  });

  test('each can be turned off to measure what it buys', () => {
    expect(load({ WARDEN_WASM_TIERUP: '1', WARDEN_HEAP_GROWING_PERCENT: '0' })).toEqual([]);
    expect(load({ WARDEN_WASM_TIERUP: '1', WARDEN_HEAP_GROWING_PERCENT: '25' })).toEqual(['--heap-growing-percent=25']);
    expect(load({ WARDEN_WASM_TIERUP: '1', WARDEN_HEAP_GROWING_PERCENT: 'x' })).toEqual([]);
  });
});
