import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AccessPolicy } from '../../common/policy/types';
import { testConfig } from '../../test/support/operator/inject-fixtures';
import { lockdownContainer, lockdownRules, lockdownScript, lockdownWanted } from './lockdown';

describe('lockdown rules', () => {
  it('accept loopback, the sidecar UID and GID together, replies and DNS to the nameservers; reject the rest', () => {
    expect(lockdownRules(['10.96.0.10'])).toBe(
      [
        '*filter',
        ':WARDEN_OUTPUT - [0:0]',
        '-A OUTPUT -j WARDEN_OUTPUT',
        '-A WARDEN_OUTPUT -o lo -j ACCEPT',
        // UID and GID together: Istio's proxy (1337:1337) relaying the app's connections is not let out.
        '-A WARDEN_OUTPUT -m owner --uid-owner 1337 --gid-owner 1338 -j ACCEPT',
        '-A WARDEN_OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
        '-A WARDEN_OUTPUT -d 10.96.0.10 -p udp --dport 53 -j ACCEPT',
        '-A WARDEN_OUTPUT -d 10.96.0.10 -p tcp --dport 53 -j ACCEPT',
        '-A WARDEN_OUTPUT -j REJECT',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
});

describe('lockdown script (run by /bin/sh with stand-in iptables-restore binaries that record their input)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-lockdown-'));
    for (const [bin, out] of [
      ['iptables-restore', 'v4'],
      ['ip6tables-restore', 'v6'],
    ]) {
      fs.writeFileSync(
        path.join(dir, bin),
        `#!/bin/sh\n[ "$#" -eq 0 ] || { echo "unexpected args: $*" >&2; exit 2; }\ncat > "${path.join(dir, out)}"\n`,
        { mode: 0o755 },
      );
    }
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function run(resolvConf: string): { v4: string; v6: string; stdout: string } {
    const resolv = path.join(dir, 'resolv.conf');
    fs.writeFileSync(resolv, resolvConf);
    const stdout = execFileSync('/bin/sh', ['-c', lockdownScript()], {
      env: { PATH: `${dir}:/usr/bin:/bin`, WARDEN_RESOLV_CONF: resolv },
      encoding: 'utf8',
    });
    return { v4: fs.readFileSync(path.join(dir, 'v4'), 'utf8'), v6: fs.readFileSync(path.join(dir, 'v6'), 'utf8'), stdout };
  }

  it('feeds iptables-restore and ip6tables-restore exactly the rules, with the pod resolv.conf nameservers', () => {
    const out = run(
      'search agents.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver fd00:10:96::a\noptions ndots:5\n',
    );
    expect(out.v4).toBe(lockdownRules(['10.96.0.10']));
    expect(out.v6).toBe(lockdownRules(['fd00:10:96::a']));
    expect(out.stdout).toContain('warden-lockdown: egress limited');
  });

  it('with no IPv6 nameserver, IPv6 DNS is not allowed at all', () => {
    const out = run('nameserver 10.96.0.10\nnameserver 10.96.0.11'); // no final newline
    expect(out.v4).toBe(lockdownRules(['10.96.0.10', '10.96.0.11']));
    expect(out.v6).toBe(lockdownRules([]));
  });
});

describe('lockdown container and switch', () => {
  const policy = (lockdown?: boolean): AccessPolicy =>
    ({
      apiVersion: 'agentwarden.io/v1alpha1',
      kind: 'AccessPolicy',
      metadata: { name: 'p' },
      spec: { targets: [], ...(lockdown !== undefined ? { lockdown } : {}) },
    }) as AccessPolicy;

  it('on by policy field, config default or pod annotation; an annotation cannot turn it off', () => {
    expect(lockdownWanted(policy(), {}, testConfig())).toBe(false);
    expect(lockdownWanted(policy(true), {}, testConfig())).toBe(true);
    expect(lockdownWanted(policy(), { 'agentwarden.io/lockdown': 'true' }, testConfig())).toBe(true);
    expect(lockdownWanted(policy(), { 'agentwarden.io/lockdown': 'false' }, testConfig({ lockdownByDefault: true }))).toBe(true);
    expect(lockdownWanted(policy(true), { 'agentwarden.io/lockdown': 'false' }, testConfig())).toBe(true);
  });

  it("the container's rules name the sidecar user the configuration runs it as", () => {
    const script = lockdownContainer(testConfig({ runAsUser: 2000, runAsGroup: 2001 })).command![2];
    expect(script).toContain("'-A WARDEN_OUTPUT -m owner --uid-owner 2000 --gid-owner 2001 -j ACCEPT'");
    expect(script).not.toContain('1337');
  });

  it('root with only NET_ADMIN and NET_RAW, a plain (run-to-completion) init container', () => {
    const c = lockdownContainer(testConfig());
    expect(c.restartPolicy).toBeUndefined();
    expect(c.command?.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(c.securityContext).toMatchObject({
      runAsUser: 0,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    });
  });
});
