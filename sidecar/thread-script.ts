// Starts a worker thread from a script beside the caller. From dist/ that is the compiled .js.
// Under the test runner the sources are TypeScript compiled in memory, and so must the thread be:
// it gets a bootstrap that compiles .ts files with swc (a dev dependency) as it requires them.
// Shared by the parser thread (postgres/classify) and the audit export thread (audit).
import fs from 'node:fs';
import path from 'node:path';
import { Worker, type ResourceLimits } from 'node:worker_threads';

/** `dir` is the caller's `__dirname`, `name` the script's name without extension. */
export function startThreadScript(dir: string, name: string, workerData: unknown, resourceLimits: ResourceLimits): Worker {
  const compiled = path.join(dir, `${name}.js`);
  if (fs.existsSync(compiled)) return new Worker(compiled, { workerData, resourceLimits });
  const source = path.join(dir, `${name}.ts`);
  const bootstrap = `
    const fs = require('node:fs');
    const swc = require(${JSON.stringify(require.resolve('@swc/core'))});
    require.extensions['.ts'] = (m, filename) => {
      const out = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
        filename, jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' },
      });
      m._compile(out.code, filename);
    };
    require(${JSON.stringify(source)});
  `;
  return new Worker(bootstrap, { eval: true, workerData, resourceLimits });
}
