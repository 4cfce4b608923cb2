import * as fs from 'node:fs';
import * as path from 'node:path';
import { crdSha256, standaloneValidatorSource } from './schema';

// The sidecar validates policies with the validator ajv generated ahead of time from the CRD
// (schema-validator.generated.ts): its start skips ajv's compile (~200 ms, ~10 MB). The file must
// be exactly what the generator makes from today's CRD and options; regenerate with
//   UPDATE_VALIDATOR=1 NODE_OPTIONS=--experimental-vm-modules npx jest common/policy/schema-validator
// (or `make policy-validator`).
const FILE = path.join(__dirname, 'schema-validator.generated.ts');

test('the precompiled validator is generated from the current CRD, toAjvSchema and ajv options', () => {
  const source = standaloneValidatorSource();
  if (process.env.UPDATE_VALIDATOR === '1') fs.writeFileSync(FILE, source);
  expect(fs.readFileSync(FILE, 'utf8') === source).toBe(true);
});

test("the validator in use is the precompiled one: ajv's compiler is not even loaded", () => {
  jest.isolateModules(() => {
    jest.doMock('ajv', () => {
      throw new Error('ajv compiler loaded');
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const schema = require('./schema') as typeof import('./schema');
    const validate = schema.getSchemaValidator();
    expect(
      validate({ apiVersion: 'agentwarden.io/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'p' }, spec: { defaultAction: 'block' } }),
    ).toBe(false);
    expect(validate.errors?.some((e) => e.instancePath === '/spec/defaultAction')).toBe(true);
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  expect((require('./schema-validator.generated') as { CRD_SHA256: string }).CRD_SHA256).toBe(crdSha256());
});
