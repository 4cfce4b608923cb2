// examples/kubernetes on a real cluster, as its README tells a user: install the chart, `kubectl
// apply -k examples/kubernetes`, watch the agent's log (masked rows, a denied DROP), approve the
// held DELETE with `kubectl warden approve`, see that the agent cannot reach the database around
// its sidecar, and `kubectl delete -k` it again. Skips like warden.test.ts without Docker + kind
// (or WARDEN_E2E_CLUSTER=existing); `make e2e` runs it.
import * as path from 'node:path';
import { SIDECAR_CONTAINER, LOCKDOWN_CONTAINER } from '../common/k8s/names';
import { clusterEnv, eventually, execIn, helm, kubectl, kubectlJson, ROOT, run, setUpKind, tearDownKind, type Cluster } from './cluster';
import { planE2e, probeMachine } from './preflight';

const plan = planE2e(probeMachine());
if (!plan.run) {
  if (process.env.WARDEN_E2E === '1') process.stderr.write(`\nagent-warden examples/kubernetes e2e: SKIPPED: ${plan.reason}\n\n`);
  else console.warn(`skipping the examples/kubernetes end-to-end suite: ${plan.reason}`);
}
const describeE2e = plan.run ? describe : describe.skip;

const EXAMPLE = path.join(ROOT, 'examples', 'kubernetes');
const NS = 'agents';
const RELEASE = 'agent-warden';
const OPERATOR_NS = 'agent-warden';
const CLEAR_PII = ['4111 1111 1111 1111', '123-45-6789', 'ada@example.com', '+1 415 555 2671', '4012888888881881'];

interface Obj {
  metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string };
  spec?: any; // read field by field
  status?: any;
}

let createdCluster = false;
let cluster: Cluster;

function setUpCluster(): Cluster {
  if (!plan.run) throw new Error('no e2e plan');
  if (plan.mode === 'existing') return clusterEnv(plan.tools);
  const kind = setUpKind(plan);
  createdCluster = kind.created;
  return kind.cluster;
}

function installChart(c: Cluster): void {
  if (!plan.run) return;
  const ref = plan.image;
  const at = ref.lastIndexOf(':');
  const [repository, tag] = at > ref.lastIndexOf('/') ? [ref.slice(0, at), ref.slice(at + 1)] : [ref, 'latest'];
  helm(c, [
    'upgrade',
    '--install',
    RELEASE,
    path.join(ROOT, 'charts', 'agent-warden'),
    '--namespace',
    OPERATOR_NS,
    '--create-namespace',
    '--set',
    `image.repository=${repository}`,
    '--set',
    `image.tag=${tag}`,
    '--wait',
    '--timeout',
    '5m',
  ]);
}

function agentPod(c: Cluster): string {
  const pods = kubectlJson<{ items: Obj[] }>(c, ['get', 'pods', '-n', NS, '-l', 'app=support-agent']).items.filter(
    (p) => !p.metadata.deletionTimestamp && p.status?.phase === 'Running',
  );
  if (pods.length !== 1) throw new Error(`expected one running support-agent pod, found ${pods.length}`);
  return pods[0].metadata.name;
}

function agentLog(c: Cluster): string {
  return kubectl(c, ['logs', '-n', NS, 'deploy/support-agent', '-c', 'agent', '--tail', '-1']);
}

function diagnose(c: Cluster): void {
  for (const args of [
    ['get', 'pods', '-A', '-o', 'wide'],
    ['get', 'events', '-n', NS, '--sort-by', '.lastTimestamp'],
    ['logs', '-n', NS, 'deploy/support-agent', '-c', SIDECAR_CONTAINER, '--tail', '100'],
    ['logs', '-n', NS, 'deploy/support-agent', '-c', 'agent', '--tail', '100'],
    ['logs', '-n', OPERATOR_NS, '-l', 'app.kubernetes.io/component=operator', '--tail', '100', '--prefix'],
  ]) {
    const r = run(c.tools.kubectl, args, { env: c.env });
    console.log(`$ kubectl ${args.join(' ')}\n${r.stdout}${r.stderr}`);
  }
}

describeE2e('examples/kubernetes on a cluster', () => {
  beforeAll(() => {
    cluster = setUpCluster();
    try {
      installChart(cluster);
      // Start from nothing: warden.test.ts uses the agents namespace too.
      kubectl(cluster, ['delete', 'namespace', NS, 'crm', '--ignore-not-found', '--wait=true', '--timeout=300s']);
      kubectl(cluster, ['apply', '-k', EXAMPLE]);
      kubectl(cluster, ['-n', 'crm', 'rollout', 'status', 'deploy/crm-db', '--timeout=300s']);
      kubectl(cluster, ['-n', NS, 'rollout', 'status', 'deploy/support-agent', '--timeout=300s']);
    } catch (err) {
      diagnose(cluster);
      throw err;
    }
  }, 1_800_000);

  afterAll(() => tearDownKind(plan, createdCluster), 300_000);

  test('the operator accepts the example policy', async () => {
    await eventually('AccessPolicy support-agent Ready=True', () => {
      const ap = kubectlJson<Obj>(cluster, ['get', 'accesspolicy', 'support-agent', '-n', NS]);
      return (ap.status?.conditions ?? []).find((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
    });
  }, 180_000);

  test('the agent pod has the sidecar and the lockdown, and no credential in its environment', () => {
    const pod = kubectlJson<Obj>(cluster, ['get', 'pod', agentPod(cluster), '-n', NS]);
    expect(pod.spec.initContainers.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining([LOCKDOWN_CONTAINER, SIDECAR_CONTAINER]),
    );
    const env = execIn(cluster, { namespace: NS, pod: pod.metadata.name, container: 'agent' }, 'env');
    expect(env.stdout).toContain('DATABASE_URL=postgresql://agent@127.0.0.1:15432/crm');
    expect(env.stdout).not.toContain('not-a-secret');
  });

  test("the agent's log shows masked rows and the denied DROP", async () => {
    const log = await eventually('a full round in the agent log', () => {
      const out = agentLog(cluster);
      return out.includes('rule "no-ddl"') ? out : undefined;
    });
    expect(log).toContain('**** **** **** 1111');
    expect(log).toContain('ERROR:  agent-warden: schema and privilege changes are not allowed for agents');
    for (const clear of CLEAR_PII) expect(log).not.toContain(clear);
  }, 180_000);

  test('the held DELETE runs once approved with `kubectl warden approve`', async () => {
    const name = await eventually('a pending ApprovalRequest', () => {
      const list = kubectlJson<{ items: Obj[] }>(cluster, ['get', 'approvalrequests', '-n', NS]);
      return list.items.find((a) => a.spec?.rule === 'writes-need-approval' && (a.status?.state ?? 'pending') === 'pending')?.metadata.name;
    });
    const approve = run(cluster.tools.kubectl, ['warden', 'approve', name, '-n', NS, '--reason', 'e2e of examples/kubernetes'], {
      env: cluster.env,
    });
    expect({ code: approve.code, out: approve.stdout + approve.stderr }).toEqual({ code: 0, out: expect.any(String) });
    await eventually('the held DELETE in the agent log', () => (agentLog(cluster).includes('[held DELETE] DELETE 1') ? true : undefined));
  }, 180_000);

  test('the agent cannot reach the database around its sidecar', () => {
    const direct = execIn(
      cluster,
      { namespace: NS, pod: agentPod(cluster), container: 'agent' },
      `psql 'postgresql://crm@crm-db.crm.svc:5432/crm?connect_timeout=5' -X -c 'SELECT 1'`,
    );
    expect(direct.code).not.toBe(0);
    // Refused by the lockdown's iptables rules (REJECT) before any PostgreSQL login, which would
    // ask for a password. DNS stays allowed, so the name resolves and the connection is refused.
    expect(direct.stderr).toMatch(/Connection refused|timeout expired|No route to host/);
    expect(direct.stderr).not.toMatch(/password/);
  });

  test('`kubectl delete -k` removes it again', () => {
    kubectl(cluster, ['delete', '-k', EXAMPLE, '--wait=true', '--timeout=300s']);
    for (const ns of [NS, 'crm']) expect(run(cluster.tools.kubectl, ['get', 'namespace', ns], { env: cluster.env }).code).not.toBe(0);
  }, 400_000);
});
