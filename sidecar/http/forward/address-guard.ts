// DNS pinning for the forward proxy: a name is resolved once, by the lookup handed to the socket
// that connects, and every address it resolves to is checked against the policy's address rules
// (IP or CIDR entries) before connecting. This is what stops `*.example.com` (allowed) from
// reaching 10.0.0.5 when `10.0.0.0/8` is denied. Holds are treated as denials here (no approval
// mid-dial).
import type * as dns from 'node:dns';
import * as net from 'node:net';
import { normalizeHost, unspecifiedAliases, type CompiledPolicy, type HostMatcher } from '../../../common/policy/compile';
import { decide, type HttpOperationWithPort } from '../../../common/policy/engine';
import type { Decision, Identity } from '../../../common/policy/types';

/** The resolved address an address rule denies or holds. */
export class AddressDeniedError extends Error {
  code = 'EWARDEN_ADDRESS_DENIED';
  constructor(
    readonly decision: Decision,
    readonly address: string,
  ) {
    super(decision.reason);
  }
}

function addressMatched(hosts: HostMatcher, ip: string, port: number): boolean {
  const check = (a: string): boolean => {
    const type = net.isIP(a) === 6 ? 'ipv6' : 'ipv4';
    if (hosts.addresses.check(a, type)) return true;
    const byPort = hosts.addressesByPort.get(port);
    return byPort !== undefined && byPort.check(a, type);
  };
  if (check(ip)) return true;
  // A name resolving to 0.0.0.0 or :: reaches this host: loopback address rules cover it.
  const n = normalizeHost(ip);
  return n !== undefined && unspecifiedAliases(n).some((a) => net.isIP(a) !== 0 && check(a));
}

/** The decision for a resolved address, when an address rule (IP/CIDR entry in `hosts`) denies or holds it; undefined otherwise. */
function addressDenial(policy: CompiledPolicy, op: HttpOperationWithPort, identity: Identity, ip: string): Decision | undefined {
  const d = decide(policy, { ...op, host: ip }, identity);
  if (d.action === 'allow' || d.rule === undefined) return undefined;
  const rule = policy.rules.find((r) => r.name === d.rule);
  const hosts = rule?.http?.hosts;
  if (!hosts || !addressMatched(hosts, ip, op.port ?? 0)) return undefined;
  return d;
}

/** base, with every address it resolves checked against the address rules (AddressDeniedError). */
export function guardedLookup(
  base: net.LookupFunction,
  policy: CompiledPolicy,
  op: HttpOperationWithPort,
  identity: Identity,
): net.LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    (base as unknown as (h: string, o: dns.LookupOptions, cb: (...args: unknown[]) => void) => void)(
      hostname,
      options,
      (err, address, family) => {
        if (err) return callback(err);
        const list = Array.isArray(address) ? (address as dns.LookupAddress[]).map((a) => a.address) : [address as string];
        for (const ip of list) {
          const d = addressDenial(policy, op, identity, ip);
          if (d) return callback(new AddressDeniedError(d, ip));
        }
        callback(null, address, family);
      },
    );
  }) as net.LookupFunction;
}
