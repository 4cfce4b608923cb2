// Istio in the same pod: how to tell, and what must hold for the two to run together.
//
// Our webhook usually runs before Istio's (webhooks are called in name order), so the pod rarely
// carries istio-proxy yet: the labels that make Istio inject count as much as its containers.
// What cannot be made to hold is refused, never patched around:
// - Egress lockdown. Istio's nat rules send the app's outbound connections to its own proxy
//   (Envoy, or ztunnel in ambient mode), which opens the real connection itself. A filter rule
//   cannot tell the proxy relaying the app from the proxy relaying our sidecar, so the app would
//   leave the pod through Istio's proxy, around the fence. Lockdown is refused with Istio.
// - The sidecar's ports. Istio's proxy listens on these ports in the pod's network namespace
//   without declaring them; ours must be elsewhere (the chart's sidecar.ports).
// - The sidecar's user. Istio leaves traffic of its proxy's UID and GID (1337) alone; a sidecar
//   running as either would reach the network past Istio's mTLS and egress rules, and the agent
//   with it through the forward proxy. It must run as another user (the chart's sidecar.runAsUser).
import type { SidecarPorts } from './config';
import type { Container, Pod } from './k8s-types';

/** Istio's proxy user and group: its iptables rules RETURN this UID's and this GID's traffic. */
export const ISTIO_PROXY_UID = 1337;
/**
 * Ports Istio's proxy listens on inside the pod: Envoy admin 15000, outbound 15001, debug 15004,
 * inbound 15006, HBONE 15008, pilot-agent 15020, health 15021, DNS 15053, Prometheus 15090
 * (ambient's ztunnel uses 15001, 15006, 15008 and 15053 there).
 */
export const ISTIO_PORTS: readonly number[] = [15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090];

const ISTIO_CONTAINERS: ReadonlySet<string> = new Set(['istio-proxy', 'istio-init', 'istio-validation']);
/** Values of sidecar.istio.io/inject that Istio takes as yes (pkg/kube/inject injectRequired). */
const ISTIO_TRUE: readonly string[] = ['y', 'yes', 'true', 'on'];
/** Annotations that configure Istio's proxy for this pod. */
const ISTIO_SETTING = /^(sidecar\.istio\.io|proxy\.istio\.io|traffic\.sidecar\.istio\.io)\//;

export interface IstioMode {
  mode: 'sidecar' | 'ambient';
  /** What gave it away, for the admission message. */
  evidence: string;
}

/**
 * Whether Istio's data plane is (or will be) in this pod. Errs on the side of "yes": a wrong yes
 * costs a refusal that says how to opt out; a wrong no could cost the fence.
 */
export function istioMode(pod: Pod, namespaceLabels: Record<string, string> | undefined): IstioMode | undefined {
  const all: Container[] = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  const present = all.find((c) => ISTIO_CONTAINERS.has(c.name));
  if (present) return { mode: 'sidecar', evidence: `it has Istio's ${present.name} container` };
  const labels = pod.metadata?.labels ?? {};
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations['sidecar.istio.io/status'] !== undefined)
    return { mode: 'sidecar', evidence: 'it carries the sidecar.istio.io/status annotation' };
  const ns = namespaceLabels ?? {};
  // As Istio's injector reads it: the label wins over the (older) annotation; y/yes/true/on ask
  // for injection, any other non-empty value opts out, empty leaves it to the namespace.
  const selector = (labels['sidecar.istio.io/inject'] ?? annotations['sidecar.istio.io/inject'] ?? '').toLowerCase();
  const optedOut = selector !== '' && !ISTIO_TRUE.includes(selector);
  if (!optedOut) {
    // Settings for Istio's proxy (proxy.istio.io/config, proxy.istio.io/overrides, which can change
    // its user) mean the pod expects it. Our own health-port exclusion is written only beside Istio.
    const setting = Object.keys(annotations).find((k) => ISTIO_SETTING.test(k) && k !== 'sidecar.istio.io/inject');
    if (setting !== undefined) return { mode: 'sidecar', evidence: `it carries Istio's ${setting} annotation` };
    if (selector !== '') return { mode: 'sidecar', evidence: `it asks for Istio injection (sidecar.istio.io/inject: "${selector}")` };
    if (labels['istio.io/rev'] !== undefined) return { mode: 'sidecar', evidence: 'it is labelled istio.io/rev' };
    if (ns['istio-injection'] === 'enabled') return { mode: 'sidecar', evidence: 'its namespace is labelled istio-injection=enabled' };
    if (ns['istio.io/rev'] !== undefined && ns['istio-injection'] !== 'disabled')
      return { mode: 'sidecar', evidence: 'its namespace is labelled istio.io/rev' };
  }
  const dataplane = labels['istio.io/dataplane-mode'] ?? ns['istio.io/dataplane-mode'];
  if (dataplane === 'ambient') {
    const where = labels['istio.io/dataplane-mode'] !== undefined ? 'it is' : 'its namespace is';
    return { mode: 'ambient', evidence: `${where} labelled istio.io/dataplane-mode=ambient` };
  }
  return undefined;
}

export interface IstioCheckInput {
  istio: IstioMode;
  lockdown: boolean;
  ports: SidecarPorts;
  /** The UID and GID the sidecar runs as. */
  runAsUser: number;
  runAsGroup: number;
}

/** What keeps Agent Warden and Istio from running in this pod, each with its fix; empty when they can. */
export function istioProblems(input: IstioCheckInput): string[] {
  const { istio, ports } = input;
  const out: string[] = [];
  if (input.lockdown) {
    out.push(
      `egress lockdown cannot be kept tight beside Istio: Istio redirects the app's outbound connections to its own proxy, ` +
        `which opens them itself, so the app would leave the pod through Istio's proxy around the fence; ` +
        `keep these agent pods out of the mesh (${optOut(istio)}) or turn lockdown off for them and fence egress with Istio`,
    );
  }
  const clashes = (['admin', 'egress', 'health'] as const).filter((k) => ISTIO_PORTS.includes(ports[k]));
  if (clashes.length > 0) {
    out.push(
      `Istio's proxy listens on ${clashes.map((k) => ports[k]).join(', ')} in the pod, which the sidecar's ` +
        `${clashes.join(', ')} port${clashes.length > 1 ? 's use' : ' uses'}: move them with the chart's sidecar.ports ` +
        `(e.g. admin 15100, egress 15101, health 15121)`,
    );
  }
  if (istio.mode === 'sidecar' && (input.runAsUser === ISTIO_PROXY_UID || input.runAsGroup === ISTIO_PROXY_UID)) {
    out.push(
      `the sidecar would run as ${input.runAsUser}:${input.runAsGroup}, and Istio lets traffic of UID/GID ${ISTIO_PROXY_UID} ` +
        `(its own proxy's) past its mTLS and egress rules: set the chart's sidecar.runAsUser and sidecar.runAsGroup to other IDs (e.g. 1338)`,
    );
  }
  return out;
}

function optOut(istio: IstioMode): string {
  return istio.mode === 'ambient' ? 'label them istio.io/dataplane-mode: none' : 'label them sidecar.istio.io/inject: "false"';
}

export const ISTIO_EXCLUDE_INBOUND = 'traffic.sidecar.istio.io/excludeInboundPorts';

/**
 * The kubelet probes the sidecar's health port on the pod IP in plain HTTP; Istio would capture it
 * for its proxy (and refuse it under STRICT mTLS), so that one port is left out of inbound capture.
 * It serves /healthz and /readyz only. Other ports the pod already excludes are kept.
 */
export function istioInboundExclusion(annotations: Record<string, string>, healthPort: number): Record<string, string> {
  const ports = (annotations[ISTIO_EXCLUDE_INBOUND] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (!ports.includes(String(healthPort))) ports.push(String(healthPort));
  return { [ISTIO_EXCLUDE_INBOUND]: ports.join(',') };
}
