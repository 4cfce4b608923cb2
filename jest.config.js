/** @type {import('jest').Config} */
const swc = ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }];
// @kubernetes/client-node and some of its dependencies ship ES modules only; Jest (on Node 20)
// cannot require them, so they are compiled to CommonJS like our own sources.
const esmOnly = [
  '@kubernetes/client-node',
  'openid-client',
  'oauth4webapi',
  'jose',
  'jsonpath-plus',
  'isomorphic-ws',
  'stream-buffers',
  'hpagent',
  'node-fetch',
  'data-uri-to-buffer',
  'fetch-blob',
  'formdata-polyfill',
];
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swc, '^.+\\.m?js$': swc },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
  testMatch: ['<rootDir>/{common,sidecar,operator,cli,e2e,test}/**/*.test.ts'],
  testTimeout: 60000,
  // Suites that start a real PostgreSQL share one server per worker; two workers fit 2 cores.
  maxWorkers: 2,
};
