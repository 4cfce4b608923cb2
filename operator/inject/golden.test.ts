// Golden-file tests for the injector, after Istio's pkg/kube/inject tests: every
// testdata/golden/<case>.yaml (a Pod or a workload) goes through the injector as the operator runs
// it (its configuration read by parseOperatorConfig from the chart-rendered operator-config.yaml,
// the AccessPolicies of policies.yaml as the informer holds them), and what comes out is compared
// with testdata/golden/<case>.injected.yaml: the outcome, the warnings, and the resulting manifest
// (the input unchanged when the pod is skipped or refused). Files are compared as parsed YAML;
// a failure shows a line diff of both sides rendered with sorted keys.
//
// After a deliberate change to the injector, regenerate and review the diff:
//   UPDATE_GOLDEN=1 NODE_OPTIONS=--experimental-vm-modules npx jest operator/inject/golden
// A new case is a new <case>.yaml here plus its line in CASES (a test fails for a file without one).
// The assertion tests beside this one (mutate.test.ts and the rest) say which properties matter;
// these say what the whole output is.
import fs from 'node:fs';
import path from 'node:path';
import { applyPatch, deepClone } from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import YAML from 'yaml';
import { INJECTION_ENABLED, INJECTION_LABEL } from '../../common/k8s/names';
import { parsePolicyYaml } from '../../common/policy/load';
import type { AccessPolicy } from '../../common/policy/types';
import { parseOperatorConfig } from '../config';
import type { InjectorConfig } from './config';
import type { Pod, PodTemplate } from './k8s-types';
import { injectPod, type InjectResult } from './mutate';
import { podTemplateOf, withPodTemplate } from './workloads';

const DIR = path.join(__dirname, 'testdata', 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const GOLDEN_SUFFIX = '.injected.yaml';
/** YAML files in DIR that are not case inputs. */
const SETTINGS_FILES = new Set(['policies.yaml', 'operator-config.yaml']);
/** The namespace the operator runs in (never injected). */
const OPERATOR_NAMESPACE = 'agent-warden';

type Obj = Record<string, unknown>;
type Outcome = InjectResult['outcome'];

interface GoldenCase {
  /** testdata/golden/<name>.yaml in, <name>.injected.yaml out. */
  name: string;
  /** What the case shows (the test's title). */
  title: string;
  /** Checked before anything is compared or written, so regenerating cannot flip it unnoticed. */
  outcome: Outcome;
  /** Labels of the pod's namespace; default: opted in. */
  namespaceLabels?: Record<string, string>;
  /** Laid over operator-config.yaml (deep merge), as a chart value would change it. */
  operator?: Obj;
}

const CASES: GoldenCase[] = [
  { name: 'plain-pod', title: 'a plain pod with one container', outcome: 'injected' },
  { name: 'multi-container', title: 'several containers: each gets the env, none gets a credential', outcome: 'injected' },
  { name: 'init-containers', title: 'init containers run after the sidecar and get its env', outcome: 'injected' },
  { name: 'own-native-sidecar', title: "the pod's own native sidecar starts after ours", outcome: 'injected' },
  { name: 'env-replaced', title: 'DATABASE_URL, OPENAI_*, HTTP(S)_PROXY and NO_PROXY of the manifest are replaced', outcome: 'injected' },
  {
    name: 'env-duplicate-name',
    title: 'an env var defined twice: every definition is replaced, the Secret reference dropped',
    outcome: 'injected',
  },
  {
    name: 'exclude-container',
    title: 'a container excluded from the env rewrite keeps its env; lockdown still covers the pod',
    outcome: 'injected',
  },
  { name: 'many-targets', title: 'several postgres and http targets, a shared Secret, a volume name clash', outcome: 'injected' },
  { name: 'forward-proxy-only', title: 'a forward-proxy-only policy: proxy variables, no Secret', outcome: 'injected' },
  { name: 'lockdown-annotation', title: 'lockdown asked for by the pod annotation', outcome: 'injected' },
  { name: 'lockdown-policy', title: 'lockdown asked for by the policy, which the annotation cannot turn off', outcome: 'injected' },
  {
    name: 'lockdown-by-default',
    title: 'lockdown by default in the operator configuration, with its own image',
    outcome: 'injected',
    operator: { lockdown: true, sidecar: { lockdownImage: 'registry.example.com/warden-iptables:1.0' } },
  },
  {
    name: 'resource-overrides',
    title: 'per-pod resource annotations, OTLP and token settings from the operator configuration',
    outcome: 'injected',
    operator: {
      sidecar: { imagePullPolicy: 'Always', tokenAudience: 'agent-warden', tokenExpirationSeconds: 1800 },
      otlp: { endpoint: 'http://otel-collector.observability:4318', protocol: 'http/protobuf' },
    },
  },
  {
    name: 'ports-moved',
    title: "the sidecar's ports moved in the operator configuration (sidecar.ports): command, probes and app env follow",
    outcome: 'injected',
    operator: { sidecar: { ports: { admin: 15100, egress: 15101, health: 15121 } } },
  },
  { name: 'deployment', title: 'a Deployment as a LangChain chart renders it', outcome: 'injected' },
  { name: 'statefulset', title: 'a StatefulSet: only the pod template changes', outcome: 'injected' },
  { name: 'job', title: 'a Job', outcome: 'injected' },
  { name: 'cronjob', title: 'a CronJob (template under jobTemplate)', outcome: 'injected' },
  { name: 'already-injected', title: 'an injected pod again: no change (idempotent)', outcome: 'skipped' },
  { name: 'opt-out-label', title: 'the pod opts out by label', outcome: 'skipped' },
  {
    name: 'namespace-not-opted-in',
    title: 'a namespace without the injection label',
    outcome: 'skipped',
    namespaceLabels: { 'kubernetes.io/metadata.name': 'agents' },
  },
  { name: 'no-policy-in-namespace', title: 'a namespace without any AccessPolicy: no change', outcome: 'skipped' },
  { name: 'no-selector-match', title: 'no podSelector matches: no change', outcome: 'skipped' },
  { name: 'lockdown-uid-clash', title: 'refused: lockdown with an app running as the sidecar UID', outcome: 'refused' },
  {
    name: 'lockdown-root-app',
    title: "refused: lockdown with an app that may run as root (it could switch to the sidecar's UID and GID)",
    outcome: 'refused',
  },
  { name: 'port-collision', title: "refused: an app port collides with the sidecar's", outcome: 'refused' },
  { name: 'istio-sidecar', title: "refused: an Istio-injected pod with the sidecar's default ports and user", outcome: 'refused' },
  {
    name: 'istio-coexist',
    title: 'beside Istio, ports and user moved: injected, health port left out of inbound capture',
    outcome: 'injected',
    operator: { sidecar: { ports: { admin: 15100, egress: 15101, health: 15121 }, runAsUser: 1338, runAsGroup: 1338 } },
  },
  {
    name: 'istio-lockdown',
    title: 'refused: lockdown beside Istio (its proxy would relay the app around the fence)',
    outcome: 'refused',
    operator: { sidecar: { ports: { admin: 15100, egress: 15101, health: 15121 }, runAsUser: 1338, runAsGroup: 1338 } },
  },
  { name: 'ambiguous-policies', title: 'refused: two policies select the pod', outcome: 'refused' },
];

interface CaseRun {
  result: InjectResult;
  /** The manifest that comes out: the input with its pod template injected, or the input itself. */
  output: Obj;
  /** `# outcome:` and `# warning:` lines of the golden file. */
  header: string[];
}

const policies = loadPolicies();
const baseOperatorConfig = YAML.parse(readText('operator-config.yaml')) as Obj;
const configCache = new Map<string, InjectorConfig>();

describe('injector golden files (testdata/golden)', () => {
  it('every input has a case and every golden file an input', () => {
    const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
    const inputs = files.filter((f) => !f.endsWith(GOLDEN_SUFFIX) && !SETTINGS_FILES.has(f)).map((f) => f.slice(0, -'.yaml'.length));
    const goldens = files.filter((f) => f.endsWith(GOLDEN_SUFFIX)).map((f) => f.slice(0, -GOLDEN_SUFFIX.length));
    const names = CASES.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    expect([...inputs].sort()).toEqual([...names].sort());
    expect(goldens.filter((g) => !names.includes(g))).toEqual([]);
  });

  describe.each(CASES.map((c) => [`${c.name}: ${c.title}`, c] as const))('%s', (_title, c) => {
    let input: Obj;
    let run: CaseRun;
    beforeAll(() => {
      input = YAML.parse(readText(`${c.name}.yaml`)) as Obj;
      run = runCase(input, c);
    });

    it(`outcome is ${c.outcome}`, () => {
      const why = run.result.outcome === 'injected' ? '' : `: ${run.result.reason}`;
      expect(`${run.result.outcome}${why}`).toMatch(new RegExp(`^${c.outcome}`));
    });

    it(`matches ${c.name}${GOLDEN_SUFFIX}`, () => {
      expect(run.result.outcome).toBe(c.outcome);
      compareGolden(c.name, run);
    });

    if (c.outcome === 'injected') {
      it('the input is not modified, and injecting the output again changes nothing', () => {
        expect(input).toEqual(YAML.parse(readText(`${c.name}.yaml`)));
        const again = injectPod(podTemplateOf(run.output) as Pod, contextFor(run.output, c));
        expect(again).toEqual({
          outcome: 'skipped',
          reason: expect.stringMatching(/already carries the agentwarden.io\/injected annotation/),
        });
      });

      it('the webhook, patching the pod a controller creates, gets the same pod', () => {
        const pod = podOf(input);
        const result = injectPod(pod, contextFor(input, c));
        if (result.outcome !== 'injected') throw new Error(`webhook path: ${result.outcome}: ${result.reason}`);
        const patched = applyPatch(deepClone(pod), deepClone(result.patch), true, false).newDocument as Pod;
        expect(patched).toEqual(result.pod);
        new PodModel(patched as never).validate();
        const template = podTemplateOf(run.output) as PodTemplate;
        expect(patched.spec).toEqual(template.spec);
        expect(patched.metadata?.annotations).toEqual(template.metadata?.annotations);
      });
    }
  });
});

/** As `warden inject` does (cli/inject.ts): the object's pod template through injectPod, put back in place. */
function runCase(input: Obj, c: GoldenCase): CaseRun {
  const template = podTemplateOf(input);
  if (template === undefined) throw new Error(`${c.name}.yaml: ${String(input.kind)} has no pod template`);
  const result = injectPod(template as Pod, contextFor(input, c));
  switch (result.outcome) {
    case 'injected': {
      const policy = `${result.policy.metadata.namespace}/${result.policy.metadata.name}`;
      const header = [`# outcome: injected (policy ${policy})`, ...result.warnings.map((w) => `# warning: ${w}`)];
      return { result, output: withPodTemplate(input, result.pod), header };
    }
    case 'skipped':
    case 'refused':
      return { result, output: input, header: [`# outcome: ${result.outcome}: ${result.reason}`] };
  }
}

function contextFor(obj: Obj, c: GoldenCase): Parameters<typeof injectPod>[1] {
  const namespace = namespaceOf(obj);
  return {
    namespace,
    namespaceLabels: c.namespaceLabels ?? { [INJECTION_LABEL]: INJECTION_ENABLED, 'kubernetes.io/metadata.name': namespace },
    policies,
    config: injectorConfig(c.operator),
  };
}

function namespaceOf(obj: Obj): string {
  const ns = (obj.metadata as { namespace?: unknown } | undefined)?.namespace;
  if (typeof ns !== 'string' || ns === '') throw new Error(`golden inputs name their namespace (${String(obj.kind)} without one)`);
  return ns;
}

/** The pod the API server hands the webhook: the Pod itself, or one a controller made from the template. */
function podOf(obj: Obj): Pod {
  if (obj.kind === 'Pod') return structuredClone(obj) as Pod;
  const template = podTemplateOf(obj) as PodTemplate;
  const meta = obj.metadata as { name: string; namespace: string };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...structuredClone(template.metadata ?? {}),
      generateName: `${meta.name}-`,
      namespace: meta.namespace,
      ownerReferences: [
        { apiVersion: 'v1', kind: String(obj.kind), name: meta.name, uid: '00000000-0000-4000-8000-000000000001', controller: true },
      ],
    },
    spec: structuredClone(template.spec!),
  };
}

/** The operator's own parse of its configuration file, with the case's settings laid over the chart's. */
function injectorConfig(overrides: Obj | undefined): InjectorConfig {
  const text = YAML.stringify(overrides ? deepMerge(baseOperatorConfig, overrides) : baseOperatorConfig);
  let config = configCache.get(text);
  if (config === undefined) {
    config = parseOperatorConfig(text, 'operator-config.yaml', OPERATOR_NAMESPACE).injector;
    configCache.set(text, config);
  }
  return config;
}

function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Obj, v) : v;
  return out;
}

function loadPolicies(): AccessPolicy[] {
  return parsePolicyYaml(readText('policies.yaml'), 'policies.yaml').map((d) => {
    if (d.status !== 'valid')
      throw new Error(`testdata/golden/policies.yaml: document ${d.index + 1} is not a valid AccessPolicy: ${JSON.stringify(d)}`);
    return d.policy;
  });
}

// ---- golden files ----

function compareGolden(name: string, run: CaseRun): void {
  const file = path.join(DIR, `${name}${GOLDEN_SUFFIX}`);
  const fresh = renderGolden(name, run);
  const exists = fs.existsSync(file);
  if (UPDATE) {
    if (!exists || fs.readFileSync(file, 'utf8') !== fresh) fs.writeFileSync(file, fresh);
    return;
  }
  if (!exists) throw new Error(`${path.relative(process.cwd(), file)} is missing: run with UPDATE_GOLDEN=1 to write it, then review it`);
  const text = fs.readFileSync(file, 'utf8');
  const expected = comparable(headerOf(text), YAML.parse(text));
  const actual = comparable(run.header, run.output);
  try {
    expect(actual).toBe(expected);
  } catch (e) {
    (e as Error).message =
      `${path.relative(process.cwd(), file)} differs from the injector's output (- expected, + received). If the change is intended, regenerate with UPDATE_GOLDEN=1 and review the diff.\n\n${(e as Error).message}`;
    throw e;
  }
}

/** The golden file as written: a header saying what it is, the outcome lines, the manifest in the injector's key order. */
function renderGolden(name: string, run: CaseRun): string {
  return [
    `# ${name}.yaml through the injector (operator/inject/golden.test.ts). Generated: do not edit;`,
    '# regenerate with UPDATE_GOLDEN=1 and review the diff.',
    ...run.header,
    YAML.stringify(run.output, { lineWidth: 0 }),
  ].join('\n');
}

function headerOf(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('# outcome: ') || l.startsWith('# warning: '));
}

/** Both sides in one canonical text (sorted keys), so equal values compare equal and a difference reads as a line diff. */
function comparable(header: string[], manifest: unknown): string {
  return [...header, YAML.stringify(sortKeys(manifest), { lineWidth: 0 })].join('\n');
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isObj(value))
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys(value[k])]),
    );
  return value;
}

function readText(file: string): string {
  return fs.readFileSync(path.join(DIR, file), 'utf8');
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
