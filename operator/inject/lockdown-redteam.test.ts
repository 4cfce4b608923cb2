// Red team, issue 14 (owner: inject). Egress lockdown lets out whatever runs as the sidecar's UID
// and GID (-m owner --uid-owner 1337 --gid-owner 1338) and rejects the rest at the filter table's
// OUTPUT hook. These pods are ones the webhook injects as "fenced", yet an agent inside can leave:
//   - CAP_NET_RAW (in containerd's and Docker's default set for root): an AF_PACKET socket writes
//     frames straight to eth0, below netfilter's IPv4/IPv6 hooks, so no iptables rule sees them
//     (UDP to any host is enough to exfiltrate; the ESTABLISHED rule even passes the kernel's RSTs).
//   - CAP_CHOWN + CAP_FOWNER + CAP_FSETID (also default for root) with privilege escalation left
//     allowed: chown 1337:1338 a copy of any binary, chmod 6755, exec it: euid 1337, egid 1338, and
//     the owner match takes it for the sidecar. Dropping SETUID and SETGID does not stop this.
//   - Any setuid-1337/setgid-1338 file in the image (no capability needed to exec one) while
//     allowPrivilegeEscalation is not false, even with every capability dropped.
//   - An image whose USER is 1337:1338 when the pod spec names no runAsUser: the webhook cannot see it.
// RT14-02/03 reproduced with the real rules in a network namespace (iptables-restore of lockdownRules'
// table; /work/redteam-findings.md): the plain socket is refused, the AF_PACKET frame and the 6755
// 1337:1338 copy reach the other side. Fixed by inject (9fc256a); the cases are plain it() since.
import { ANNOTATIONS } from '../../common/k8s/names';
import { fixture, fixturePolicies, OPTED_IN, testConfig } from '../../test/support/operator/inject-fixtures';
import type { Pod, SecurityContext } from './k8s-types';
import { injectPod, type InjectContext } from './mutate';

const ctx = (): InjectContext => ({ namespace: 'agents', namespaceLabels: OPTED_IN, policies: fixturePolicies(), config: testConfig() });

function lockedDown(agent: SecurityContext & Record<string, unknown>, pod: SecurityContext & Record<string, unknown> = {}): Pod {
  const p = fixture<Pod>('agent-pod.yaml');
  p.metadata!.annotations = { [ANNOTATIONS.lockdown]: 'true' };
  p.spec!.securityContext = pod;
  p.spec!.containers[0].securityContext = agent;
  return p;
}

describe('red team 14: lockdown is refused for app containers that can step outside the fence', () => {
  it('RT14-02 root that drops only SETUID and SETGID keeps NET_RAW (AF_PACKET) and CHOWN/FOWNER/FSETID (setuid copy)', () => {
    const result = injectPod(lockedDown({ capabilities: { drop: ['SETUID', 'SETGID'] } }), ctx());
    expect(result.outcome).toBe('refused');
  });

  // Non-root is no cure while escalation is allowed: su/passwd/mount (setuid root in most Debian-based
  // images) give back root with every capability the bounding set kept (NET_RAW, CHOWN, FOWNER, FSETID).
  it('RT14-02 non-root (runAsUser 1000) dropping only SETUID and SETGID, escalation allowed: a setuid-root binary is root again', () => {
    const result = injectPod(lockedDown({ runAsUser: 1000, runAsNonRoot: true, capabilities: { drop: ['SETUID', 'SETGID'] } }), ctx());
    expect(result.outcome).toBe('refused');
  });

  it('RT14-03 root that drops ALL but adds NET_RAW back (ping) sends frames below iptables', () => {
    const result = injectPod(lockedDown({ capabilities: { drop: ['ALL'], add: ['NET_RAW'] }, allowPrivilegeEscalation: false }), ctx());
    expect(result.outcome).toBe('refused');
  });

  it('RT14-03 root that drops ALL but adds SYS_MODULE (load a module that unhooks the rules): adds are not an allowlist', () => {
    const result = injectPod(lockedDown({ capabilities: { drop: ['ALL'], add: ['SYS_MODULE'] }, allowPrivilegeEscalation: false }), ctx());
    expect(result.outcome).toBe('refused');
  });

  it('RT14-04 drops ALL but leaves privilege escalation allowed: a setuid 1337 / setgid 1338 file in the image is the sidecar', () => {
    const result = injectPod(lockedDown({ capabilities: { drop: ['ALL'] } }), ctx());
    expect(result.outcome).toBe('refused');
  });

  it('RT14-05 non-root without escalation but no runAsUser/runAsGroup: the image USER may be 1337:1338', () => {
    const result = injectPod(
      lockedDown({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }, { runAsNonRoot: true }),
      ctx(),
    );
    expect(result.outcome).toBe('refused');
  });

  // The init container trusts whatever nameserver /etc/resolv.conf names; dnsPolicy: None lets
  // the pod spec name any host, and the rule then opens TCP and UDP 53 to it for any payload
  // (an SSH or VPN server on port 53 is a full tunnel), not just DNS through the cluster resolver.
  it('RT14-10 dnsPolicy None with a nameserver outside the cluster opens TCP/UDP 53 to that host', () => {
    const pod = lockedDown({ runAsUser: 10001, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    Object.assign(pod.spec!, { dnsPolicy: 'None', dnsConfig: { nameservers: ['203.0.113.53'] } });
    expect(injectPod(pod, ctx()).outcome).toBe('refused');
  });

  // What held (plain it): a container that names the sidecar's UID is refused on main already.
  it('a container running as the sidecar UID is refused', () => {
    const result = injectPod(
      lockedDown({ runAsUser: 1337, runAsGroup: 1338, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }),
      ctx(),
    );
    expect(result.outcome).toBe('refused');
  });

  // A hardened container must stay injectable, or the fix would refuse everything.
  it('a hardened container (explicit non-sidecar UID, drop ALL, no escalation) is injected with lockdown', () => {
    const result = injectPod(
      lockedDown({ runAsUser: 10001, runAsGroup: 10001, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }),
      ctx(),
    );
    expect(result.outcome).toBe('injected');
  });
});
