/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  testMatch: ['<rootDir>/{common,sidecar,operator,cli,e2e,test}/**/*.test.ts'],
  testTimeout: 60000,
  // Suites that start a real PostgreSQL share one server per worker; two workers fit 2 cores.
  maxWorkers: 2,
};
