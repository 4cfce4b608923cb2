// Optional egress lockdown: an init container that writes iptables rules into the pod's network
// namespace so the app containers cannot reach the network except through the sidecar. Without
// it the proxy env vars are a convention an agent can ignore; with it they are a fence.
import { ANNOTATIONS, LOCKDOWN_CONTAINER, SIDECAR_UID } from '../../common/k8s/names';
import { DEFAULT_SIDECAR_GID } from './config';
import type { AccessPolicy } from '../../common/policy/types';
import type { InjectorConfig } from './config';
import type { Container, PodSpec, SecurityContext } from './k8s-types';

/**
 * Whether this pod is locked down: `spec.lockdown` on the policy,
 * else the pod's annotation, else the injector's default. An annotation can turn lockdown on but
 * never off when the policy or the default asks for it.
 */
export function lockdownWanted(policy: AccessPolicy, annotations: Record<string, string>, config: InjectorConfig): boolean {
  const fromPolicy = policy.spec.lockdown === true;
  return fromPolicy || config.lockdownByDefault || annotations[ANNOTATIONS.lockdown] === 'true';
}

interface RuleParts {
  head: string[];
  dns: (nameserver: string) => string[];
  tail: string[];
}

/** Whose traffic the fence lets out: the sidecar's UID and GID, both (a process with only one of them is fenced). */
export interface LockdownOwner {
  uid: number;
  gid: number;
}

const DEFAULT_OWNER: LockdownOwner = { uid: SIDECAR_UID, gid: DEFAULT_SIDECAR_GID };

function ruleParts(owner: LockdownOwner): RuleParts {
  return {
    head: [
      '*filter',
      ':WARDEN_OUTPUT - [0:0]',
      '-A OUTPUT -j WARDEN_OUTPUT',
      '-A WARDEN_OUTPUT -o lo -j ACCEPT',
      `-A WARDEN_OUTPUT -m owner --uid-owner ${owner.uid} --gid-owner ${owner.gid} -j ACCEPT`,
      '-A WARDEN_OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    ],
    dns: (ns) => [`-A WARDEN_OUTPUT -d ${ns} -p udp --dport 53 -j ACCEPT`, `-A WARDEN_OUTPUT -d ${ns} -p tcp --dport 53 -j ACCEPT`],
    tail: ['-A WARDEN_OUTPUT -j REJECT', 'COMMIT'],
  };
}

/**
 * iptables-restore input for the filter table's OUTPUT chain. Allowed: loopback (the sidecar's
 * listeners), anything the sidecar's UID and GID send (together: Istio's proxy runs as 1337:1337), replies on connections others opened to the pod
 * (probes, Services), and DNS to the pod's own nameservers only (port 53 to any host would be a
 * tunnel). Everything else is rejected, so a client fails fast instead of hanging.
 */
export function lockdownRules(nameservers: readonly string[], owner: LockdownOwner = DEFAULT_OWNER): string {
  const p = ruleParts(owner);
  return [...p.head, ...nameservers.flatMap(p.dns), ...p.tail, ''].join('\n');
}

/**
 * The shell script the init container runs: reads the nameservers from /etc/resolv.conf (the same
 * file the app containers get), then loads IPv4 and IPv6 rules, the same lines lockdownRules
 * writes. Without --noflush the filter table is replaced as a whole, so a re-run after a sandbox
 * restart leaves exactly one copy of the rules.
 */
export function lockdownScript(owner: LockdownOwner = DEFAULT_OWNER): string {
  const p = ruleParts(owner);
  const quoted = (lines: string[]): string => lines.map((l) => `'${l}'`).join(' ');
  const rules = (nsVar: string): string =>
    `printf '%s\\n' ${quoted(p.head)}; ` +
    `for ns in ${nsVar}; do printf '%s\\n' ${p
      .dns('$ns')
      .map((l) => `"${l}"`)
      .join(' ')}; done; ` +
    `printf '%s\\n' ${quoted(p.tail)}`;
  return [
    'set -eu',
    'ns4=""; ns6=""',
    // `|| [ -n "$key" ]`: a last line without a newline still counts.
    'while read -r key value _ || [ -n "$key" ]; do',
    '  [ "$key" = nameserver ] || continue',
    '  case "$value" in *:*) ns6="$ns6 $value" ;; *) ns4="$ns4 $value" ;; esac',
    'done < "${WARDEN_RESOLV_CONF:-/etc/resolv.conf}"',
    `{ ${rules('$ns4')}; } | iptables-restore`,
    `{ ${rules('$ns6')}; } | ip6tables-restore`,
    `echo "warden-lockdown: egress limited to loopback, DNS ($ns4$ns6) and UID:GID ${owner.uid}:${owner.gid}"`,
    '',
  ].join('\n');
}

export function lockdownContainer(config: InjectorConfig): Container {
  return {
    name: LOCKDOWN_CONTAINER,
    image: config.lockdownImage,
    imagePullPolicy: config.imagePullPolicy,
    command: ['/bin/sh', '-c', lockdownScript({ uid: config.runAsUser, gid: config.runAsGroup })],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    securityContext: {
      // iptables needs root in the pod's network namespace, and only these two capabilities.
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/**
 * The only capability an app container may add under lockdown. Everything else a root process
 * keeps by default opens a way out: NET_RAW (AF_PACKET frames never meet the OUTPUT chain),
 * SETUID/SETGID (become the sidecar), CHOWN/FOWNER/FSETID (a 6755 copy of any binary owned by the
 * sidecar's IDs), NET_ADMIN/SYS_ADMIN (rewrite the rules), SYS_PTRACE (borrow the sidecar's sockets).
 */
const ALLOWED_ADDED_CAPABILITIES: readonly string[] = ['NET_BIND_SERVICE'];

interface ContainerSecurity extends SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
}

const normCap = (c: string): string => c.toUpperCase().replace(/^CAP_/, '');

/**
 * Why a container could leave a locked-down pod, or undefined. The rules let out one identity, the
 * sidecar's UID and GID, so every container must be unable to take it or get below the rules:
 * - not privileged, and no added capability but NET_BIND_SERVICE;
 * - allowPrivilegeEscalation: false (no_new_privs: a setuid/setgid file, shipped in the image or
 *   made at run time, cannot hand it the sidecar's IDs);
 * - an identity the webhook can see that is not the sidecar's: runAsUser or runAsGroup set (pod or
 *   container) and different from the sidecar's (an image's USER could be 1337:1338);
 * - when it may run as root (runAsUser 0, or unset without runAsNonRoot), capabilities dropped: ALL.
 */
export function lockdownEscape(c: Container, podSecurity: SecurityContext | undefined, sidecar: LockdownOwner): string | undefined {
  const sc = (c.securityContext ?? {}) as ContainerSecurity;
  if (sc.privileged === true) return 'is privileged (it could rewrite the iptables rules)';
  const added = (sc.capabilities?.add ?? []).map(normCap).filter((cap) => !ALLOWED_ADDED_CAPABILITIES.includes(cap));
  if (added.length > 0)
    return `adds the ${added.join(', ')} capabilit${added.length > 1 ? 'ies' : 'y'} (only NET_BIND_SERVICE may be added)`;
  if (sc.allowPrivilegeEscalation !== false)
    return "allows privilege escalation (a setuid/setgid file could give it the sidecar's UID and GID)";
  const uid = sc.runAsUser ?? podSecurity?.runAsUser;
  const gid = sc.runAsGroup ?? podSecurity?.runAsGroup;
  if (!((uid !== undefined && uid !== sidecar.uid) || (gid !== undefined && gid !== sidecar.gid)))
    return "sets no runAsUser or runAsGroup that differs from the sidecar's (its image's USER could be the sidecar's)";
  const mayBeRoot = uid === 0 || (uid === undefined && (sc.runAsNonRoot ?? podSecurity?.runAsNonRoot) !== true);
  const dropped = new Set((sc.capabilities?.drop ?? []).map(normCap));
  if (mayBeRoot && !dropped.has('ALL'))
    return 'may run as root with the default capabilities (NET_RAW sends below the rules; SETUID, SETGID, CHOWN, FSETID make it the sidecar)';
  return undefined;
}

/** What lockdown asks of every app container, for the admission message. */
export const LOCKDOWN_CONTAINER_FIX =
  "{runAsUser: <not the sidecar's>, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}";

/** The first container of the pod's own that could leave the fence, as an admission message; undefined when none. */
export function lockdownEscapes(spec: PodSpec, sidecar: LockdownOwner): string | undefined {
  // The rules open port 53 to the nameservers in /etc/resolv.conf, which dnsConfig.nameservers
  // (with any dnsPolicy) puts there: any host, any payload on port 53 would be a tunnel.
  const dns = (spec.dnsConfig as { nameservers?: unknown[] } | undefined)?.nameservers ?? [];
  if (dns.length > 0) {
    return (
      `egress lockdown cannot fence a pod that names its own nameservers (dnsConfig.nameservers: ${dns.join(', ')}): ` +
      `the rules let port 53 through to them; use the cluster's DNS`
    );
  }
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const why = lockdownEscape(c, spec.securityContext, sidecar);
    if (why === undefined) continue;
    return `egress lockdown cannot fence container ${c.name}: it ${why}; set its securityContext to ${LOCKDOWN_CONTAINER_FIX}`;
  }
  return undefined;
}
