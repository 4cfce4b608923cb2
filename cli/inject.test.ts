import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { ANNOTATIONS, SIDECAR_CONTAINER } from '../common/k8s/names';
import {
  FIXTURES_DIR,
  fixture,
  fixturePolicies,
  IMAGE,
  OPTED_IN,
  podFromWorkload,
  testConfig,
} from '../test/support/operator/inject-fixtures';
import type { Pod, PodTemplate } from '../operator/inject/k8s-types';
import { injectPod } from '../operator/inject/mutate';
import { podTemplateOf } from '../operator/inject/workloads';
import { main } from './main';
import { runCli } from './run';

const POLICY = path.join(FIXTURES_DIR, 'policies.yaml');
const fx = (name: string): string => path.join(FIXTURES_DIR, name);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], stdin?: string): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: (s: string) => void (stdout += s),
    stderr: (s: string) => void (stderr += s),
    readStdin: async () => stdin ?? '',
  };
  const code = await runCli(['inject', ...argv], io, { env: {} });
  return { code, stdout, stderr };
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-inject-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: support-agent, namespace: agents}
spec:
  selector: {app.kubernetes.io/name: support-agent}
  ports: [{port: 80, targetPort: http}]
`;

const manifest = (): string =>
  [
    SERVICE,
    ...['langchain-deployment.yaml', 'statefulset.yaml', 'job.yaml', 'cronjob.yaml', 'hostnetwork-pod.yaml', 'agent-pod.yaml'].map((f) =>
      fs.readFileSync(fx(f), 'utf8'),
    ),
  ].join('---\n');

const sidecarOf = (t: PodTemplate | undefined): unknown => t?.spec?.initContainers?.find((c) => c.name === SIDECAR_CONTAINER);

describe('warden inject', () => {
  it('injects every selected Pod and pod template, leaves the rest alone, and the results are valid objects', async () => {
    const r = await run(['-f', write('all.yaml', manifest()), '--policy', POLICY, '--image', IMAGE]);
    expect(r.code).toBe(0);
    const docs = YAML.parseAllDocuments(r.stdout).map((d) => d.toJS() as Record<string, unknown>);
    expect(docs.map((d) => d.kind)).toEqual(['Service', 'Deployment', 'StatefulSet', 'Job', 'CronJob', 'Pod', 'Pod']);
    expect(docs[0]).toEqual(YAML.parse(SERVICE));
    new Deployment(docs[1] as never).validate();
    new StatefulSet(docs[2] as never).validate();
    new Job(docs[3] as never).validate();
    new CronJob(docs[4] as never).validate();
    new PodModel(docs[6] as never).validate();
    for (const i of [1, 2, 3, 4, 6]) expect(sidecarOf(podTemplateOf(docs[i]))).toMatchObject({ image: IMAGE, restartPolicy: 'Always' });
    // the Job and CronJob keep their app containers as they were, with the sidecar as an init container
    expect(podTemplateOf(docs[4])!.spec!.containers.map((c) => c.name)).toEqual(['report']);
    // the hostNetwork pod is printed unchanged, and stderr says why
    expect(docs[5]).toEqual(fixture('hostnetwork-pod.yaml'));
    expect(r.stderr).toContain('Pod/node-agent-x7k2p: not injected: pod uses hostNetwork');
    expect(r.stderr).toContain('Deployment/support-agent: warning: container langserve: OPENAI_API_KEY, DATABASE_URL replaced');
  });

  it('does what the webhook does: a pod created from the injected Deployment equals the webhook-injected pod', async () => {
    const r = await run(['-f', fx('langchain-deployment.yaml'), '--policy', POLICY, '--image', IMAGE]);
    const injectedDeployment = YAML.parse(r.stdout) as Record<string, unknown>;
    const webhook = injectPod(podFromWorkload(fixture('langchain-deployment.yaml')), {
      namespace: 'agents',
      namespaceLabels: OPTED_IN,
      policies: fixturePolicies(),
      config: testConfig(),
    });
    if (webhook.outcome !== 'injected') throw new Error(webhook.outcome);
    const fromTemplate = podFromWorkload(injectedDeployment);
    expect(fromTemplate.spec).toEqual(webhook.pod.spec);
    expect(fromTemplate.metadata!.annotations).toEqual(webhook.pod.metadata!.annotations);
    // and the webhook then leaves that pod alone
    expect(
      injectPod(fromTemplate, { namespace: 'agents', namespaceLabels: OPTED_IN, policies: fixturePolicies(), config: testConfig() })
        .outcome,
    ).toBe('skipped');
  });

  it('is idempotent: injecting its own output changes nothing', async () => {
    const first = await run(['-f', write('once.yaml', manifest()), '--policy', POLICY, '--image', IMAGE]);
    const second = await run(['-f', write('twice.yaml', first.stdout), '--policy', POLICY, '--image', IMAGE]);
    expect(second.code).toBe(0);
    expect(YAML.parseAllDocuments(second.stdout).map((d) => d.toJS())).toEqual(YAML.parseAllDocuments(first.stdout).map((d) => d.toJS()));
    expect(second.stderr).toMatch(/Deployment\/support-agent: not injected: pod already carries/);
  });

  it('reads standard input with -f - and prints JSON with -o json', async () => {
    const r = await run(
      ['-f', '-', '--policy', POLICY, '--image', IMAGE, '-o', 'json', '--lockdown'],
      // Lockdown refuses app containers that could switch to the sidecar's UID (root with its default capabilities).
      fs
        .readFileSync(fx('agent-pod.yaml'), 'utf8')
        .replace(
          '      args:',
          '      securityContext: {runAsUser: 10001, capabilities: {drop: [ALL]}, allowPrivilegeEscalation: false}\n      args:',
        ),
    );
    expect(r.code).toBe(0);
    const pod = JSON.parse(r.stdout) as Pod;
    new PodModel(pod as never).validate();
    expect(pod.spec!.initContainers!.map((c) => c.name)).toEqual(['warden-lockdown', SIDECAR_CONTAINER]);
    expect(JSON.parse(pod.metadata!.annotations![ANNOTATIONS.injected]).lockdown).toBe(true);
  });

  it('several documents as JSON become a v1 List; a List input is injected item by item', async () => {
    const list = { apiVersion: 'v1', kind: 'List', items: [fixture('agent-pod.yaml'), YAML.parse(SERVICE)] };
    const r = await run(['-f', write('list.json', JSON.stringify(list)), '--policy', POLICY, '-o', 'json']);
    const out = JSON.parse(r.stdout) as { kind: string; items: Pod[] };
    expect(out.kind).toBe('List');
    expect(out.items[0].spec!.initContainers![0].image).toBe(
      `ghcr.io/agent-warden/agent-warden:${JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version}`,
    );
    expect(out.items[1]).toEqual(YAML.parse(SERVICE));
  });

  it("objects without a namespace are taken to be in the policies' namespace, or --namespace", async () => {
    const pod = fixture<Pod>('agent-pod.yaml');
    delete pod.metadata!.namespace;
    const file = write('nons.yaml', YAML.stringify(pod));
    expect(YAML.parse((await run(['-f', file, '--policy', POLICY])).stdout).spec.initContainers[0].name).toBe(SIDECAR_CONTAINER);
    const elsewhere = await run(['-f', file, '--policy', POLICY, '--namespace', 'staging']);
    expect(elsewhere.code).toBe(0);
    expect(elsewhere.stderr).toContain('no AccessPolicy in namespace staging selects this pod');
  });

  it.each<[string, () => string[], number, RegExp]>([
    ['no -f', () => ['--policy', POLICY], 2, /^warden inject: missing required option -f FILE; see 'warden inject --help'\n$/],
    [
      'no --policy',
      () => ['-f', fx('agent-pod.yaml')],
      2,
      /^warden inject: missing required option --policy FILE; see 'warden inject --help'\n$/,
    ],
    [
      'unknown option',
      () => ['-f', fx('agent-pod.yaml'), '--policy', POLICY, '--inject-harder'],
      2,
      /^warden inject: unknown option '--inject-harder'; see 'warden inject --help'\n$/,
    ],
    [
      'bad output format',
      () => ['-f', fx('agent-pod.yaml'), '--policy', POLICY, '-o', 'xml'],
      2,
      /argument 'xml' is invalid. Allowed choices are yaml, json;/,
    ],
    [
      'bad image',
      () => ['-f', fx('agent-pod.yaml'), '--policy', POLICY, '--image', 'not an image'],
      2,
      /image: must be a container image reference/,
    ],
    [
      'missing manifest',
      () => ['-f', path.join(dir, 'nope.yaml'), '--policy', POLICY],
      1,
      /^warden inject: cannot read \/.*nope.yaml: no such file\n$/,
    ],
    [
      'missing policy',
      () => ['-f', fx('agent-pod.yaml'), '--policy', path.join(dir, 'nope.yaml')],
      1,
      /^warden inject: cannot read \/.*nope.yaml: no such file\n$/,
    ],
    [
      'YAML syntax error',
      () => ['-f', write('bad.yaml', 'kind: Pod\nmetadata: {name: x\n'), '--policy', POLICY],
      1,
      /bad.yaml: YAML syntax error at line \d+/,
    ],
    [
      'a scalar document',
      () => ['-f', write('scalar.yaml', 'just text\n'), '--policy', POLICY],
      1,
      /document 1 is not a Kubernetes object/,
    ],
    [
      'invalid policy',
      () => [
        '-f',
        fx('agent-pod.yaml'),
        '--policy',
        write(
          'badpolicy.yaml',
          'apiVersion: agentwarden.io/v1alpha1\nkind: AccessPolicy\nmetadata: {name: p}\nspec:\n  defaultAction: block\n  targets: []\n',
        ),
      ],
      1,
      /badpolicy.yaml: AccessPolicy p: spec.defaultAction: must be one of: allow, deny/,
    ],
    ['no policy in the file', () => ['-f', fx('agent-pod.yaml'), '--policy', fx('agent-pod.yaml')], 1, /no AccessPolicy in/],
    [
      'a pod the webhook would refuse',
      () => ['-f', fx('istio-pod.yaml'), '--policy', POLICY],
      1,
      /Pod\/support-agent-7d9f8b6c5-\*: pod runs Istio \(it has Istio's istio-init container\)/,
    ],
  ])('%s: exits non-zero (2 usage, 1 input) with a clear message and no manifest', async (_name, args, code, message) => {
    const r = await run(args());
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('is registered as `warden inject`', async () => {
    const out: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    try {
      expect(await main(['inject', '--help'])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    expect(out.join('')).toContain('Usage: warden inject [options]');
  });
});
