import type { Pod } from './k8s-types';
import { fixture } from '../../test/support/operator/inject-fixtures';
import { ISTIO_EXCLUDE_INBOUND, istioInboundExclusion, istioMode, istioProblems, type IstioMode } from './istio';

const pod = (labels: Record<string, string> = {}, annotations: Record<string, string> = {}): Pod => ({
  metadata: { labels, annotations },
  spec: { containers: [{ name: 'agent' }] },
});

describe('istioMode: Istio in the pod, or about to be (our webhook usually runs before its injector)', () => {
  it.each<[string, Pod, Record<string, string> | undefined, IstioMode['mode'] | undefined]>([
    ['no Istio anywhere', pod(), {}, undefined],
    ['istio-proxy already injected', fixture<Pod>('istio-pod.yaml'), {}, 'sidecar'],
    [
      'istio-proxy as a native sidecar',
      { spec: { initContainers: [{ name: 'istio-proxy' }], containers: [{ name: 'a' }] } },
      {},
      'sidecar',
    ],
    ['sidecar.istio.io/status annotation', pod({}, { 'sidecar.istio.io/status': '{}' }), {}, 'sidecar'],
    ['pod label sidecar.istio.io/inject=true', pod({ 'sidecar.istio.io/inject': 'true' }), {}, 'sidecar'],
    ['legacy pod annotation sidecar.istio.io/inject=true', pod({}, { 'sidecar.istio.io/inject': 'true' }), {}, 'sidecar'],
    ['pod label istio.io/rev', pod({ 'istio.io/rev': 'canary' }), {}, 'sidecar'],
    ['namespace istio-injection=enabled', pod(), { 'istio-injection': 'enabled' }, 'sidecar'],
    ['namespace istio.io/rev', pod(), { 'istio.io/rev': '1-24' }, 'sidecar'],
    ['namespace istio.io/rev but istio-injection=disabled', pod(), { 'istio.io/rev': '1-24', 'istio-injection': 'disabled' }, undefined],
    ['namespace enabled, pod opted out by label', pod({ 'sidecar.istio.io/inject': 'false' }), { 'istio-injection': 'enabled' }, undefined],
    ['namespace ambient', pod(), { 'istio.io/dataplane-mode': 'ambient' }, 'ambient'],
    ['pod ambient', pod({ 'istio.io/dataplane-mode': 'ambient' }), {}, 'ambient'],
    [
      'namespace ambient, pod opted out (dataplane-mode none)',
      pod({ 'istio.io/dataplane-mode': 'none' }),
      { 'istio.io/dataplane-mode': 'ambient' },
      undefined,
    ],
    // Opting out of the sidecar does not opt out of ambient.
    [
      'sidecar opted out, namespace ambient',
      pod({ 'sidecar.istio.io/inject': 'false' }),
      { 'istio.io/dataplane-mode': 'ambient' },
      'ambient',
    ],
    ['namespace unknown (undefined labels)', pod(), undefined, undefined],
    // RT14-09: Istio prefers the label to the annotation, and takes y/yes/on as true.
    [
      'label "true" beats annotation "false"',
      pod({ 'sidecar.istio.io/inject': 'true' }, { 'sidecar.istio.io/inject': 'false' }),
      {},
      'sidecar',
    ],
    [
      'label "yes" in an enabled namespace, annotation "false"',
      pod({ 'sidecar.istio.io/inject': 'yes' }, { 'sidecar.istio.io/inject': 'false' }),
      { 'istio-injection': 'enabled' },
      'sidecar',
    ],
    ['label "On"', pod({ 'sidecar.istio.io/inject': 'On' }), {}, 'sidecar'],
    [
      'label "no" in an enabled namespace (Istio: any other value opts out)',
      pod({ 'sidecar.istio.io/inject': 'no' }),
      { 'istio-injection': 'enabled' },
      undefined,
    ],
    // proxy.istio.io/overrides can give Istio's proxy any user, even ours: the pod expects Istio.
    ['proxy.istio.io/overrides annotation', pod({}, { 'proxy.istio.io/overrides': '{"containers":[]}' }), {}, 'sidecar'],
    ['traffic.sidecar.istio.io/* annotation', pod({}, { 'traffic.sidecar.istio.io/excludeOutboundPorts': '5432' }), {}, 'sidecar'],
    [
      'Istio settings but opted out of injection',
      pod({ 'sidecar.istio.io/inject': 'false' }, { 'proxy.istio.io/config': '{}' }),
      {},
      undefined,
    ],
  ])('%s', (_name, p, ns, mode) => {
    expect(istioMode(p, ns)?.mode).toBe(mode);
  });
});

describe('istioProblems: what must hold for Agent Warden beside Istio', () => {
  const sidecar: IstioMode = { mode: 'sidecar', evidence: 'test' };
  const ambient: IstioMode = { mode: 'ambient', evidence: 'test' };
  const moved = { admin: 15100, egress: 15101, health: 15121 };
  const ok = { lockdown: false, ports: moved, runAsUser: 1338, runAsGroup: 1338 };

  it('moved ports, another user, no lockdown: none', () => {
    expect(istioProblems({ istio: sidecar, ...ok })).toEqual([]);
    expect(istioProblems({ istio: ambient, ...ok })).toEqual([]);
  });

  it('lockdown is refused in both modes, whatever else holds (Istio would relay the app around the fence)', () => {
    for (const istio of [sidecar, ambient]) {
      const problems = istioProblems({ istio, ...ok, lockdown: true });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^egress lockdown cannot be kept tight beside Istio/);
    }
    expect(istioProblems({ istio: ambient, ...ok, lockdown: true })[0]).toContain('istio.io/dataplane-mode: none');
    expect(istioProblems({ istio: sidecar, ...ok, lockdown: true })[0]).toContain('sidecar.istio.io/inject: "false"');
  });

  it.each([15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090])('a sidecar port on Istio port %i is refused', (port) => {
    const problems = istioProblems({ istio: sidecar, ...ok, ports: { ...moved, egress: port } });
    expect(problems).toEqual([expect.stringMatching(new RegExp(`^Istio's proxy listens on ${port} .*egress port uses: move them`))]);
  });

  it('UID or GID 1337 (which Istio leaves uncaptured) is refused beside the Istio sidecar; ambient does not exempt it', () => {
    expect(istioProblems({ istio: sidecar, ...ok, runAsUser: 1337 })).toEqual([expect.stringMatching(/would run as 1337:1338/)]);
    expect(istioProblems({ istio: sidecar, ...ok, runAsGroup: 1337 })).toEqual([expect.stringMatching(/would run as 1338:1337/)]);
    expect(istioProblems({ istio: ambient, ...ok, runAsUser: 1337, runAsGroup: 1337 })).toEqual([]);
  });
});

describe('istioInboundExclusion', () => {
  it("adds the health port to the pod's own exclusions, once", () => {
    expect(istioInboundExclusion({}, 15121)).toEqual({ [ISTIO_EXCLUDE_INBOUND]: '15121' });
    expect(istioInboundExclusion({ [ISTIO_EXCLUDE_INBOUND]: '8081, 9090' }, 15121)).toEqual({ [ISTIO_EXCLUDE_INBOUND]: '8081,9090,15121' });
    expect(istioInboundExclusion({ [ISTIO_EXCLUDE_INBOUND]: '15121' }, 15121)).toEqual({ [ISTIO_EXCLUDE_INBOUND]: '15121' });
  });
});
