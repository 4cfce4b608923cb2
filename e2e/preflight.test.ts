// The skip decision, from what the probes found (runs everywhere; the suite itself needs a cluster).
import { E2E_IMAGE, KIND_CLUSTER, planE2e, probeMachine, type Probes } from './preflight';

const tools = { helm: '/x/helm', kubectl: '/x/kubectl' };
const yes = { ok: true, detail: 'ok' };
function probes(over: Partial<Probes> = {}): Probes {
  return {
    docker: yes,
    kind: yes,
    cluster: { ok: false, detail: 'not probed' },
    tools: { ok: true, tools },
    ...over,
    env: { WARDEN_E2E: '1', ...over.env },
  };
}

test('Docker engine and kind present: run on a kind cluster with the locally built image', () => {
  expect(planE2e(probes())).toEqual({ run: true, mode: 'kind', tools, clusterName: KIND_CLUSTER, image: E2E_IMAGE, keepCluster: false });
  expect(planE2e(probes({ env: { WARDEN_E2E_KEEP: '1', WARDEN_E2E_KIND_CLUSTER: 'mine' } }))).toMatchObject({
    clusterName: 'mine',
    keepCluster: true,
  });
});

test('a Docker client without an engine skips, saying so', () => {
  const plan = planE2e(probes({ docker: { ok: false, detail: '`docker info` exited 1: Cannot connect to the Docker daemon' } }));
  expect(plan).toEqual({
    run: false,
    reason: 'no Docker engine (kind runs its nodes in Docker): `docker info` exited 1: Cannot connect to the Docker daemon',
  });
});

test('no kind binary skips, with where to get it', () => {
  const plan = planE2e(probes({ kind: { ok: false, detail: 'kind: not found on PATH' } }));
  expect(plan.run).toBe(false);
  expect(!plan.run && plan.reason).toMatch(/^no kind binary: kind: not found on PATH \(https:\/\/kind\.sigs\.k8s\.io/);
});

test('missing helm/kubectl binaries skip with their reason', () => {
  expect(planE2e(probes({ tools: { ok: false, reason: 'not linux x64' } }))).toEqual({ run: false, reason: 'not linux x64' });
});

test('an existing cluster needs an answer from the API server and a pullable image', () => {
  const env = { WARDEN_E2E_CLUSTER: 'existing' };
  expect(planE2e(probes({ env, cluster: { ok: false, detail: 'connection refused' } }))).toEqual({
    run: false,
    reason: 'WARDEN_E2E_CLUSTER=existing but no cluster answers: connection refused',
  });
  expect(planE2e(probes({ env, cluster: yes })).run).toBe(false);
  expect(planE2e(probes({ env: { ...env, WARDEN_E2E_IMAGE: 'registry.example/agent-warden:1' }, cluster: yes }))).toEqual({
    run: true,
    mode: 'existing',
    tools,
    image: 'registry.example/agent-warden:1',
  });
});

test('without WARDEN_E2E=1 (plain `make test`) it skips without probing anything', () => {
  for (const env of [{}, { WARDEN_E2E: '0' }]) {
    const p = probeMachine(env);
    expect(p.docker.detail).toBe('not probed');
    expect(planE2e(p)).toEqual({ run: false, reason: 'it runs with `make e2e` (or WARDEN_E2E=1)' });
  }
});

test('this machine: the probes give a definite plan (a reason when skipping)', () => {
  const plan = planE2e(probeMachine({ ...process.env, WARDEN_E2E: '1' }));
  if (!plan.run) expect(plan.reason.length).toBeGreaterThan(10);
  else expect(['kind', 'existing']).toContain(plan.mode);
});
