// Host patterns for match.http.hosts: compiled once (compile.ts), used by the engine.
import { compileHostMatcher, compilePolicy, hostMatcherHas, normalizeHost, parseHostPattern } from '../../../common/policy/compile';
import { decide, type HttpOperationWithPort } from '../../../common/policy/engine';
import type { Identity, RuleSpec } from '../../../common/policy/types';

const m = (patterns: string[]) => compileHostMatcher(patterns);

test('exact names: case-insensitive, trailing dot ignored, IDNA-normalised', () => {
  const h = m(['API.Example.com', 'bücher.de']);
  expect(hostMatcherHas(h, 'api.example.com')).toBe(true);
  expect(hostMatcherHas(h, 'API.EXAMPLE.COM.')).toBe(true);
  expect(hostMatcherHas(h, 'xn--bcher-kva.de')).toBe(true);
  expect(hostMatcherHas(h, 'BÜCHER.de')).toBe(true);
  expect(hostMatcherHas(h, 'example.com')).toBe(false);
  expect(hostMatcherHas(h, 'api.example.com.evil')).toBe(false);
});

test('*.example.com matches one or more labels but not the apex; * inside a label stays in the label', () => {
  const h = m(['*.example.com', 'api-*.corp.io']);
  expect(hostMatcherHas(h, 'a.example.com')).toBe(true);
  expect(hostMatcherHas(h, 'a.b.c.example.com')).toBe(true);
  expect(hostMatcherHas(h, 'example.com')).toBe(false);
  expect(hostMatcherHas(h, 'evilexample.com')).toBe(false);
  expect(hostMatcherHas(h, 'api-v1.corp.io')).toBe(true);
  expect(hostMatcherHas(h, 'api-v1.x.corp.io')).toBe(false);
  expect(hostMatcherHas(m(['*']), 'anything.at.all')).toBe(true);
});

test('ports: a pattern with a port matches only that port', () => {
  const h = m(['example.com:443', '*.svc:8080', '[::1]:8443', '10.0.0.0/8:22']);
  expect(hostMatcherHas(h, 'example.com', 443)).toBe(true);
  expect(hostMatcherHas(h, 'example.com', 80)).toBe(false);
  expect(hostMatcherHas(h, 'example.com')).toBe(false);
  expect(hostMatcherHas(h, 'a.svc', 8080)).toBe(true);
  expect(hostMatcherHas(h, 'a.svc', 80)).toBe(false);
  expect(hostMatcherHas(h, '::1', 8443)).toBe(true);
  expect(hostMatcherHas(h, '[::1]', 8443)).toBe(true);
  expect(hostMatcherHas(h, '10.9.9.9', 22)).toBe(true);
  expect(hostMatcherHas(h, '10.9.9.9', 23)).toBe(false);
});

test('IP literals and CIDR (v4, v6, IPv4-mapped, WHATWG number forms)', () => {
  const h = m(['10.0.0.0/8', 'fd00::/8', '192.168.1.7', '2001:db8::1', '127.0.0.0/8']);
  expect(hostMatcherHas(h, '10.200.3.4')).toBe(true);
  expect(hostMatcherHas(h, '11.0.0.1')).toBe(false);
  expect(hostMatcherHas(h, 'fd12:3456::1')).toBe(true);
  expect(hostMatcherHas(h, 'fe80::1')).toBe(false);
  expect(hostMatcherHas(h, '192.168.1.7')).toBe(true);
  expect(hostMatcherHas(h, '192.168.1.8')).toBe(false);
  expect(hostMatcherHas(h, '2001:DB8:0:0::1')).toBe(true);
  expect(hostMatcherHas(h, '::ffff:10.1.2.3')).toBe(true);
  // Forms a resolver would turn into 127.0.0.1 are normalised before matching.
  expect(hostMatcherHas(h, '2130706433')).toBe(true);
  expect(hostMatcherHas(h, '0x7f.1')).toBe(true);
  // Names never match address patterns (and vice versa).
  expect(hostMatcherHas(h, 'ten.example')).toBe(false);
  expect(hostMatcherHas(m(['*.example.com']), '10.0.0.1')).toBe(false);
});

test('invalid patterns are rejected with a message naming the entry', () => {
  expect(parseHostPattern('10.0.0.0/33')).toMatch(/"10.0.0.0\/33".*prefix/);
  expect(parseHostPattern('example.com:0')).toMatch(/port/);
  expect(parseHostPattern('exa mple.com')).toMatch(/invalid host/);
  expect(parseHostPattern('foo/8')).toMatch(/CIDR/);
  expect(() => m(['ok.com', 'bad:99999'])).toThrow(/bad:99999/);
  expect(normalizeHost('a/b')).toBeUndefined();
  expect(normalizeHost('[::1]')).toBe('::1');
});

test('engine: hosts rules with target "" and a port, first match wins, default applies to unnamed hosts', () => {
  const rules: RuleSpec[] = [
    { name: 'no-metadata', action: 'deny', match: { http: { hosts: ['169.254.0.0/16', 'metadata.google.internal'] } } },
    { name: 'llm', action: 'allow', match: { http: { hosts: ['*.openai.com:443'] } } },
    { name: 'posts-held', action: 'hold', match: { http: { methods: ['POST'], hosts: ['*.internal'] } } },
  ];
  const p = compilePolicy({
    apiVersion: 'agentwarden.io/v1alpha1',
    kind: 'AccessPolicy',
    metadata: { name: 'p' },
    spec: { targets: [], rules },
  });
  const who: Identity = { subject: 's', groups: [], source: 'pod' };
  const op = (host: string, port: number, method = 'CONNECT'): HttpOperationWithPort => ({
    type: 'http',
    target: '',
    method,
    path: '',
    host,
    port,
    headers: {},
  });
  expect(decide(p, op('169.254.169.254', 80), who)).toMatchObject({ action: 'deny', rule: 'no-metadata' });
  expect(decide(p, op('Metadata.Google.Internal.', 80), who)).toMatchObject({ action: 'deny', rule: 'no-metadata' });
  expect(decide(p, op('api.openai.com', 443), who)).toMatchObject({ action: 'allow', rule: 'llm' });
  const fallback = decide(p, op('api.openai.com', 80), who);
  expect(fallback.action).toBe('deny');
  expect(fallback.rule).toBeUndefined();
  expect(decide(p, op('x.internal', 80, 'POST'), who)).toMatchObject({ action: 'hold', rule: 'posts-held' });
  expect(decide(p, op('x.internal', 80, 'GET'), who).rule).toBeUndefined();
});

test('the unspecified addresses (0.0.0.0, ::, and their other spellings) count as loopback', () => {
  const byAddress = m(['127.0.0.0/8']);
  const byV6 = m(['::1']);
  const byName = m(['localhost']);
  for (const h of ['0.0.0.0', '0', '0x0', '00.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0', '::ffff:0.0.0.0']) {
    expect([h, hostMatcherHas(byAddress, h), hostMatcherHas(byV6, h), hostMatcherHas(byName, h)]).toEqual([h, true, true, true]);
  }
  // Ports still apply, and other addresses are not loopback.
  expect(hostMatcherHas(m(['127.0.0.1:8080']), '0.0.0.0', 8080)).toBe(true);
  expect(hostMatcherHas(m(['127.0.0.1:8080']), '0.0.0.0', 80)).toBe(false);
  expect(hostMatcherHas(byAddress, '0.0.0.1')).toBe(false);
  expect(hostMatcherHas(byV6, '::2')).toBe(false);
});

test('a rule naming localhost covers the loopback addresses (any spelling), with its port', () => {
  const byName = m(['localhost']);
  for (const h of ['127.0.0.1', '127.1', '2130706433', '127.0.0.2', '::1', '[::1]', '::ffff:127.0.0.1', 'LOCALHOST', 'localhost.']) {
    expect([h, hostMatcherHas(byName, h, 80)]).toEqual([h, true]);
  }
  expect(hostMatcherHas(byName, '128.0.0.1')).toBe(false);
  expect(hostMatcherHas(byName, '::2')).toBe(false);
  expect(hostMatcherHas(m(['localhost:8080']), '127.0.0.1', 8080)).toBe(true);
  expect(hostMatcherHas(m(['localhost:8080']), '127.0.0.1', 80)).toBe(false);
});
