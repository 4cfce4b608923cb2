// The shipped build (tsconfig.json → dist/ → the image) holds only what runs in production: no test
// support, no benches, no tests, and no production file that imports them. Test doubles live under
// test/support/<part>/ and build, with the benches, through tsconfig.dev.json into dist-dev/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '..');

function parseConfig(name: string): ts.ParsedCommandLine {
  const file = path.join(ROOT, name);
  const parsed = ts.getParsedCommandLineOfConfigFile(
    file,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error(`cannot read ${name}`);
  return parsed;
}

const shipped = parseConfig('tsconfig.json');
// Every file tsc compiles into dist/: the included ones and whatever they import.
const program = ts.createProgram(shipped.fileNames, { ...shipped.options, noEmit: true });
const compiled = program
  .getSourceFiles()
  .map((f) => path.relative(ROOT, f.fileName))
  .filter((f) => !f.startsWith('node_modules' + path.sep) && !f.startsWith('..'));

/** Directories that hold test support, tests and dev tools. */
const DEV_ROOTS = ['test', 'bench', 'e2e'];
/** Names the test doubles had, or have, in any part of the tree. */
const DOUBLE_NAME = /(^|[/-])(tests?|testing|testkit|testdata|fakes?|fixtures?|bench|mocks?|stubs?)([/.-]|$)/i;

describe('the shipped build (tsconfig.json → dist/)', () => {
  test('compiles production code, and the demo that ships with the CLI', () => {
    expect(compiled).toEqual(
      expect.arrayContaining([
        'cli/main.ts',
        'sidecar/main.ts',
        'operator/main.ts',
        'cli/demo.ts',
        'cli/demo-llm.ts',
        'tools/pg-server.ts',
      ]),
    );
  });

  test('compiles no test support, bench, e2e code or test', () => {
    const leaked = compiled.filter((f) => DEV_ROOTS.some((d) => f.startsWith(d + '/')) || f.endsWith('.test.ts') || DOUBLE_NAME.test(f));
    expect(leaked).toEqual([]);
  });

  test('no production file imports test support, a bench or e2e code', () => {
    const offending: string[] = [];
    for (const rel of compiled) {
      const info = ts.preProcessFile(fs.readFileSync(path.join(ROOT, rel), 'utf8'), true, true);
      for (const { fileName: spec } of info.importedFiles) {
        if (!spec.startsWith('.')) continue;
        const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(rel), spec));
        if (DEV_ROOTS.some((d) => target === d || target.startsWith(d + '/'))) offending.push(`${rel} → ${spec}`);
      }
    }
    expect(offending).toEqual([]);
  });

  test('the image builds from exactly the directories tsconfig.json compiles', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const buildStage = dockerfile.split(/^FROM /m)[1];
    const copied = [...buildStage.matchAll(/^COPY (?!--)(\S+) /gm)]
      .map((m) => m[1])
      .filter((s) => fs.statSync(path.join(ROOT, s)).isDirectory());
    const included = (shipped.raw as { include: string[] }).include;
    expect([...copied].sort()).toEqual([...included].sort());
  });

  test('the dev build (benches and test support) emits elsewhere, not into dist/', () => {
    const dev = parseConfig('tsconfig.dev.json');
    expect(path.relative(ROOT, dev.options.outDir!)).toBe('dist-dev');
    expect(path.relative(ROOT, shipped.options.outDir!)).toBe('dist');
    expect(fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8').split('\n')).toEqual(expect.arrayContaining(['dist/', 'dist-dev/']));
  });
});
