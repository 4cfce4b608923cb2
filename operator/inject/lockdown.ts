// Optional egress lockdown: an init container that writes iptables rules into the pod's network
// namespace so the app containers cannot reach the network except through the sidecar. Without
// it the proxy env vars are a convention an agent can ignore; with it they are a fence.
import { ANNOTATIONS, LOCKDOWN_CONTAINER, SIDECAR_UID } from '../../common/k8s/names';
import { DEFAULT_SIDECAR_GID } from './config';
import type { AccessPolicy } from '../../common/policy/types';
import type { InjectorConfig } from './config';
import type { Container } from './k8s-types';

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
