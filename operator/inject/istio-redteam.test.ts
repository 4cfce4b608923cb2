// Red team, issue 14 (owner: inject). Istio reads sidecar.istio.io/inject from the pod's label and
// falls back to the annotation only when the label is absent ("if both are present we prefer the
// label", istio pkg/kube/inject/webhook.go injectRequired; y/yes/true/on mean inject). istioMode
// counts a "false" in EITHER place as an opt-out, so label "true" + annotation "false" makes
// Istio inject while Agent Warden believes the pod is outside the mesh: no refusal of the sidecar's
// UID 1337 (Istio's RETURN rule then lets the sidecar, and the agent through its forward proxy, past
// the mesh's mTLS and egress rules) and no port or lockdown check. (The lockdown fence itself still
// holds thanks to the 1338 GID: Envoy's 1337:1337 upstream connections are rejected.)
import type { Pod } from './k8s-types';
import { istioMode } from './istio';

const pod = (labels: Record<string, string>, annotations: Record<string, string>): Pod => ({
  metadata: { name: 'agent', labels, annotations },
  spec: { containers: [{ name: 'agent', image: 'agent:1' }] },
});

describe('red team 14: Istio opt-out read as Istio reads it', () => {
  it('RT14-09 label sidecar.istio.io/inject "true" wins over annotation "false": Istio injects', () => {
    expect(istioMode(pod({ 'sidecar.istio.io/inject': 'true' }, { 'sidecar.istio.io/inject': 'false' }), {})).toBeDefined();
  });

  it('RT14-09 label "yes" (Istio: inject) beats annotation "false" in an istio-injection=enabled namespace', () => {
    expect(
      istioMode(pod({ 'sidecar.istio.io/inject': 'yes' }, { 'sidecar.istio.io/inject': 'false' }), { 'istio-injection': 'enabled' }),
    ).toBeDefined();
  });

  // Held: the plain opt-outs and the plain opt-ins agree with Istio.
  it('a label "false" alone opts out; a label "true" alone is detected', () => {
    expect(istioMode(pod({ 'sidecar.istio.io/inject': 'false' }, {}), { 'istio-injection': 'enabled' })).toBeUndefined();
    expect(istioMode(pod({ 'sidecar.istio.io/inject': 'true' }, {}), {})).toBeDefined();
  });
});
