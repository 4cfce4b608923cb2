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
