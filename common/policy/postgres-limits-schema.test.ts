// The schema (and so `warden validate`, the sidecar and the API server) accepts readOnly,
// maxConnections and maxStatementBytes on postgres targets and names the field of a bad value.
import { validateAccessPolicy } from './schema';

function doc(postgres: Record<string, unknown>): unknown {
  return {
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: { targets: [{ name: 'crm', postgres: { host: 'h', database: 'd', credentialsSecret: 's', listenPort: 15432, ...postgres } }] },
  };
}

function errors(postgres: Record<string, unknown>): Array<{ path: string; message: string }> {
  const r = validateAccessPolicy(doc(postgres));
  return r.ok ? [] : r.errors;
}

test('readOnly, maxConnections and maxStatementBytes are accepted at their limits', () => {
  expect(errors({ readOnly: true, maxConnections: 20 })).toEqual([]);
  expect(errors({ readOnly: false, maxConnections: 1 })).toEqual([]);
  expect(errors({ maxConnections: 10000 })).toEqual([]);
  expect(errors({ maxStatementBytes: 1024 })).toEqual([]);
  expect(errors({ maxStatementBytes: 268435456 })).toEqual([]);
});

test.each([
  [{ readOnly: 'yes' }, 'spec.targets[0].postgres.readOnly'],
  [{ maxConnections: 0 }, 'spec.targets[0].postgres.maxConnections'],
  [{ maxConnections: 10001 }, 'spec.targets[0].postgres.maxConnections'],
  [{ maxConnections: 2.5 }, 'spec.targets[0].postgres.maxConnections'],
  [{ maxConnections: '20' }, 'spec.targets[0].postgres.maxConnections'],
  [{ maxStatementBytes: 1023 }, 'spec.targets[0].postgres.maxStatementBytes'],
  [{ maxStatementBytes: 268435457 }, 'spec.targets[0].postgres.maxStatementBytes'],
  [{ maxStatementBytes: 4096.5 }, 'spec.targets[0].postgres.maxStatementBytes'],
])('%j is refused with an error naming the field', (postgres, path) => {
  const e = errors(postgres);
  expect(e.length).toBeGreaterThan(0);
  expect(e[0].path).toBe(path);
});
