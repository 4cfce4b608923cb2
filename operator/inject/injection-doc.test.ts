// docs/injection.md says what injection changes in every container. Its tables and the lockdown
// rules are generated here from the injector itself (a real injectPod run on the fixture pod and
// policy), and its prose is checked against the code's own lists (proxy variables, annotations,
// Istio ports, the capabilities lockdown refuses), so the page cannot drift from what is injected.
// After a deliberate change, regenerate the tables with:
//   UPDATE_DOCS=1 NODE_OPTIONS=--experimental-vm-modules npx jest operator/inject/injection-doc
import fs from 'node:fs';
import path from 'node:path';
import { ANNOTATIONS, LOCKDOWN_CONTAINER, SIDECAR_CONTAINER } from '../../common/k8s/names';
import { fixture, fixturePolicies, OPTED_IN, testConfig } from '../../test/support/operator/inject-fixtures';
import { API_KEY_FOR, API_KEY_PLACEHOLDER } from './app-env';
import { DEFAULT_SIDECAR_GID } from './config';
import { ISTIO_EXCLUDE_INBOUND, ISTIO_PORTS } from './istio';
import type { Pod, Volume } from './k8s-types';
import { lockdownRules } from './lockdown';
import { injectPod } from './mutate';

const DOC = path.join(__dirname, '..', '..', 'docs', 'injection.md');
const UPDATE = process.env.UPDATE_DOCS === '1';

/** The fixture agent pod, hardened so lockdown admits it, injected under the support-agent policy with lockdown on. */
function injectedExample(): Pod {
  const pod = fixture<Pod>('agent-pod.yaml');
  pod.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
  pod.spec!.containers[0].securityContext = { runAsUser: 10001, capabilities: { drop: ['ALL'] }, allowPrivilegeEscalation: false };
  const result = injectPod(pod, { namespace: 'agents', namespaceLabels: OPTED_IN, policies: fixturePolicies(), config: testConfig() });
  if (result.outcome !== 'injected') throw new Error(`fixture not injected: ${result.outcome}`);
  return result.pod;
}

const code = (s: string): string => `\`${s.replace(/\|/g, '\\|')}\``;

function appEnvTable(pod: Pod): string {
  const agent = pod.spec!.containers[0];
  const injected = new Set((JSON.parse(pod.metadata!.annotations![ANNOTATIONS.injected]) as { env: string[] }).env);
  const rows = (agent.env ?? [])
    .filter((e) => injected.has(e.name))
    .map((e) => `| ${code(e.name)} | ${e.value !== undefined ? code(e.value) : '(the manifest’s own)'} |`);
  return ['| variable | value in the example pod |', '|---|---|', ...rows].join('\n');
}

function volumeSource(v: Volume): string {
  if (v.configMap) return `ConfigMap ${code((v.configMap as { name: string }).name)}`;
  if (v.secret) {
    const s = v.secret as { secretName: string; optional?: boolean };
    return `Secret ${code(s.secretName)}${s.optional ? ' (optional)' : ''}`;
  }
  if (v.projected) return 'projected: ServiceAccount token + `kube-root-ca.crt`';
  if (v.emptyDir) return `emptyDir (${(v.emptyDir as { sizeLimit?: string }).sizeLimit ?? 'no limit'})`;
  return 'other';
}

function volumeTable(pod: Pod): string {
  const sidecar = pod.spec!.initContainers!.find((c) => c.name === SIDECAR_CONTAINER)!;
  const mounts = new Map((sidecar.volumeMounts ?? []).map((m) => [m.name, m]));
  const rows = (pod.spec!.volumes ?? []).map((v) => {
    const m = mounts.get(v.name);
    return `| ${code(v.name)} | ${volumeSource(v)} | ${m ? `${code(m.mountPath)}${m.readOnly ? ' (read-only)' : ''}` : '—'} |`;
  });
  return ['| volume | source | mounted in warden-sidecar at |', '|---|---|---|', ...rows].join('\n');
}

function containerOrder(pod: Pod): string {
  const init = pod.spec!.initContainers!.map((c) => code(c.name)).join(', ');
  return `initContainers: ${init}; containers: ${pod.spec!.containers.map((c) => code(c.name)).join(', ')}`;
}

function sidecarCommand(pod: Pod): string {
  const sidecar = pod.spec!.initContainers!.find((c) => c.name === SIDECAR_CONTAINER)!;
  return ['```', sidecar.command!.join(' '), '```'].join('\n');
}

function annotationTable(): string {
  const rows = Object.entries(ANNOTATIONS).map(([key, name]) => `| ${code(name)} | ${key} |`);
  return ['| annotation | (name in `common/k8s/names.ts`) |', '|---|---|', ...rows].join('\n');
}

const GENERATED: Record<string, () => string> = {
  'container-order': () => containerOrder(injectedExample()),
  'app-env': () => appEnvTable(injectedExample()),
  volumes: () => volumeTable(injectedExample()),
  'sidecar-command': () => sidecarCommand(injectedExample()),
  'lockdown-rules': () => ['```', lockdownRules(['10.96.0.10']).trimEnd(), '```'].join('\n'),
  annotations: annotationTable,
};

function regenerate(text: string): string {
  let out = text;
  for (const [name, make] of Object.entries(GENERATED)) {
    const re = new RegExp(`(<!-- BEGIN GENERATED: ${name} -->\\n)[\\s\\S]*?(<!-- END GENERATED: ${name} -->)`);
    if (!re.test(out)) throw new Error(`docs/injection.md has no GENERATED: ${name} block`);
    out = out.replace(re, (_m, begin: string, end: string) => `${begin}${make()}\n${end}`);
  }
  return out;
}

describe('docs/injection.md', () => {
  const text = fs.readFileSync(DOC, 'utf8');

  it('its generated blocks are what the injector does today (UPDATE_DOCS=1 rewrites them)', () => {
    const fresh = regenerate(text);
    if (UPDATE) {
      fs.writeFileSync(DOC, fresh);
      return;
    }
    expect(text).toBe(fresh);
  });

  it('names every variable the injector may set, both spellings of each proxy variable, and the placeholder', () => {
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'no_proxy', '127.0.0.1,localhost,::1'])
      expect(text).toContain(code(name));
    for (const [base, key] of Object.entries(API_KEY_FOR)) {
      expect(text).toContain(code(base));
      expect(text).toContain(code(key));
    }
    expect(text).toContain(code(API_KEY_PLACEHOLDER));
  });

  it('names the containers, the settings and the lists the code keeps', () => {
    for (const s of [
      SIDECAR_CONTAINER,
      LOCKDOWN_CONTAINER,
      ISTIO_EXCLUDE_INBOUND,
      'sidecar.ports',
      'sidecar.runAsUser',
      'sidecar.runAsGroup',
    ])
      expect(text).toContain(s);
    for (const port of ISTIO_PORTS) expect(text).toContain(String(port));
    for (const cap of ['NET_ADMIN', 'SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_PTRACE']) expect(text).toContain(cap);
    expect(text).toContain(`--gid-owner ${DEFAULT_SIDECAR_GID}`);
  });
});
