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

/** Capabilities that undo the fence (NET_ADMIN, SYS_ADMIN: rewrite the rules), take on the sidecar's identity (SETUID, SETGID) or borrow its sockets (SYS_PTRACE). */
const ESCAPE_CAPABILITIES: readonly string[] = ['ALL', 'NET_ADMIN', 'SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_PTRACE'];

interface ContainerSecurity extends SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
}

const normCap = (c: string): string => c.toUpperCase().replace(/^CAP_/, '');

/**
 * Why a container could leave a locked-down pod, or undefined. The rules let out the sidecar's UID
 * and GID, so a process that can become them (root keeps CAP_SETUID and CAP_SETGID by default:
 * setgid(1338) + setuid(1337) and it is "the sidecar"), or rewrite the rules, is not fenced at all.
 * A container passes when it is not privileged, adds none of ESCAPE_CAPABILITIES, and either drops
 * SETUID and SETGID (or ALL) or runs as a known non-root user without privilege escalation.
 */
export function lockdownEscape(c: Container, podSecurity: SecurityContext | undefined): string | undefined {
  const sc = (c.securityContext ?? {}) as ContainerSecurity;
  if (sc.privileged === true) return 'is privileged (it could rewrite the iptables rules)';
  const added = (sc.capabilities?.add ?? []).map(normCap).filter((cap) => ESCAPE_CAPABILITIES.includes(cap));
  if (added.length > 0) return `adds the ${added.join(', ')} capabilit${added.length > 1 ? 'ies' : 'y'}`;
  const dropped = new Set((sc.capabilities?.drop ?? []).map(normCap));
  if (dropped.has('ALL') || (dropped.has('SETUID') && dropped.has('SETGID'))) return undefined;
  const uid = sc.runAsUser ?? podSecurity?.runAsUser;
  const nonRoot = uid !== undefined ? uid !== 0 : (sc.runAsNonRoot ?? podSecurity?.runAsNonRoot) === true;
  if (nonRoot && sc.allowPrivilegeEscalation === false) return undefined;
  return uid === 0 || !nonRoot
    ? "may run as root, which can switch to the sidecar's UID and GID"
    : "allows privilege escalation (a setuid binary could switch it to the sidecar's UID and GID)";
}

/** The first container of the pod's own that could leave the fence, as an admission message; undefined when none. */
export function lockdownEscapes(spec: PodSpec): string | undefined {
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const why = lockdownEscape(c, spec.securityContext);
    if (why === undefined) continue;
    return (
      `egress lockdown cannot fence container ${c.name}: it ${why}; set its securityContext to ` +
      `{capabilities: {drop: [ALL]}, allowPrivilegeEscalation: false} (or runAsNonRoot: true with allowPrivilegeEscalation: false)`
    );
  }
  return undefined;
}
