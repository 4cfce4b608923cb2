import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  generateCa,
  issueServingCert,
  needsRotation,
  planCertificates,
  rotationReason,
  serviceDnsNames,
  splitPemBundle,
  type WebhookCertMaterial,
} from './ca';

const DAY = 86_400_000;
const T0 = new Date('2030-01-01T00:00:00Z');
const at = (days: number): Date => new Date(T0.getTime() + days * DAY);
const NAMES = serviceDnsNames('warden-webhook', 'agent-warden');

describe('serviceDnsNames', () => {
  it('lists the four names a Service answers to', () => {
    expect(NAMES).toEqual([
      'warden-webhook',
      'warden-webhook.agent-warden',
      'warden-webhook.agent-warden.svc',
      'warden-webhook.agent-warden.svc.cluster.local',
    ]);
  });
});

describe('generateCa / issueServingCert', () => {
  it('leaves no Reflect metadata stand-in behind once @peculiar/x509 has loaded', async () => {
    await generateCa({ now: T0 });
    expect((Reflect as { getMetadata?: unknown }).getMetadata).toBeUndefined();
    expect((Reflect as { getOwnMetadata?: unknown }).getOwnMetadata).toBeUndefined();
  });

  it('makes a one-year P-256 CA that verifies itself', async () => {
    const ca = await generateCa({ now: T0 });
    const c = new X509Certificate(ca.cert);
    expect(c.ca).toBe(true);
    expect(c.subject).toMatch(/CN=agent-warden-webhook-ca-/);
    expect(c.issuer).toBe(c.subject);
    expect(c.verify(c.publicKey)).toBe(true);
    expect(c.checkPrivateKey(createPrivateKey(ca.key))).toBe(true);
    expect(c.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(Date.parse(c.validTo) - T0.getTime()).toBe(365 * DAY);
    expect(Date.parse(c.validFrom)).toBeLessThan(T0.getTime());
  });

  it('issues a 90-day serverAuth certificate for the Service names, signed by the CA', async () => {
    const ca = await generateCa({ now: T0 });
    const leaf = await issueServingCert({ ca, dnsNames: NAMES, now: T0 });
    const c = new X509Certificate(leaf.cert);
    const caCert = new X509Certificate(ca.cert);
    expect(c.ca).toBe(false);
    expect(c.issuer).toBe(caCert.subject);
    expect(c.checkIssued(caCert)).toBe(true);
    expect(c.verify(caCert.publicKey)).toBe(true);
    expect(c.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(c.subjectAltName).toBe(NAMES.map((n) => `DNS:${n}`).join(', '));
    for (const n of NAMES) expect(c.checkHost(n)).toBe(n);
    expect(c.checkHost('evil.example.com')).toBeUndefined();
    expect(Date.parse(c.validTo) - T0.getTime()).toBe(90 * DAY);
    expect(c.checkPrivateKey(createPrivateKey(leaf.key))).toBe(true);
  });

  it('never lets the serving certificate outlive its CA', async () => {
    const ca = await generateCa({ now: T0, validityDays: 30 });
    const leaf = await issueServingCert({ ca, dnsNames: NAMES, now: T0 });
    expect(new X509Certificate(leaf.cert).validTo).toBe(new X509Certificate(ca.cert).validTo);
  });

  it('refuses a CA key that is not PKCS#8 EC', async () => {
    const ca = await generateCa({ now: T0 });
    await expect(issueServingCert({ ca: { cert: ca.cert, key: 'garbage' }, dnsNames: NAMES, now: T0 })).rejects.toThrow(/CA key/);
  });
});

describe('needsRotation', () => {
  let ca: { cert: string; key: string };
  let leaf: { cert: string; key: string };
  beforeAll(async () => {
    ca = await generateCa({ now: T0 });
    leaf = await issueServingCert({ ca, dnsNames: NAMES, now: T0 });
  });

  it('keeps a certificate with more than a third of its life left', () => {
    expect(needsRotation(leaf.cert, T0, { dnsNames: NAMES, issuer: ca.cert })).toBe(false);
    expect(needsRotation(leaf.cert, at(59))).toBe(false);
  });

  it('rotates once less than a third remains, and when expired', () => {
    expect(needsRotation(leaf.cert, at(61))).toBe(true);
    expect(rotationReason(leaf.cert, at(100))).toMatch(/less than a third/);
  });

  it('rotates when the names or the issuer do not match, or the PEM is garbage', async () => {
    expect(rotationReason(leaf.cert, T0, { dnsNames: serviceDnsNames('other', 'agent-warden') })).toMatch(/names/);
    const otherCa = await generateCa({ now: T0 });
    expect(rotationReason(leaf.cert, T0, { issuer: otherCa.cert })).toMatch(/not issued by the current CA/);
    expect(rotationReason('not a pem', T0)).toMatch(/does not parse/);
  });

  it('rotates a certificate dated in the future', () => {
    expect(rotationReason(leaf.cert, at(-1))).toMatch(/not valid before/);
  });
});

describe('planCertificates', () => {
  const plan = (cur: Partial<WebhookCertMaterial> | undefined, now: Date): ReturnType<typeof planCertificates> =>
    planCertificates(cur, { dnsNames: NAMES, now });

  it('creates everything from nothing, then leaves it alone', async () => {
    const first = await plan(undefined, T0);
    expect(first.changed).toBe(true);
    expect(splitPemBundle(first.material.caBundle)).toHaveLength(1);
    const again = await plan(first.material, at(1));
    expect(again.changed).toBe(false);
    expect(again.material).toEqual(first.material);
  });

  it('re-issues the serving certificate under the same CA after two thirds of 90 days', async () => {
    const first = (await plan(undefined, T0)).material;
    const next = await plan(first, at(61));
    expect(next.changed).toBe(true);
    expect(next.material.caBundle).toBe(first.caBundle);
    expect(next.material.caKey).toBe(first.caKey);
    expect(next.material.cert).not.toBe(first.cert);
    expect(new X509Certificate(next.material.cert).verify(new X509Certificate(first.caBundle).publicKey)).toBe(true);
  });

  it('rotates the CA keeping the old one in the bundle until it expires', async () => {
    const first = (await plan(undefined, T0)).material;
    const rotated = await plan(first, at(250));
    expect(rotated.changed).toBe(true);
    const bundle = splitPemBundle(rotated.material.caBundle);
    expect(bundle).toHaveLength(2);
    expect(bundle[1]).toBe(first.caBundle);
    const newCa = new X509Certificate(bundle[0]);
    expect(newCa.subject).not.toBe(new X509Certificate(first.caBundle).subject);
    expect(new X509Certificate(rotated.material.cert).checkIssued(newCa)).toBe(true);
    expect(newCa.checkPrivateKey(createPrivateKey(rotated.material.caKey))).toBe(true);

    // Still overlapping a day later: nothing to do. After the old CA expires it is dropped.
    expect((await plan(rotated.material, at(251))).changed).toBe(false);
    const pruned = await plan(rotated.material, at(366));
    expect(pruned.changed).toBe(true);
    expect(splitPemBundle(pruned.material.caBundle)).toEqual([bundle[0]]);
  });

  it('starts over when the CA key does not match, and re-issues when the names change', async () => {
    const first = (await plan(undefined, T0)).material;
    const other = (await plan(undefined, T0)).material;
    const broken = await plan({ ...first, caKey: other.caKey }, T0);
    expect(broken.reason).toMatch(/CA key does not match/);
    expect(splitPemBundle(broken.material.caBundle)).toHaveLength(2);

    const renamed = await planCertificates(first, { dnsNames: serviceDnsNames('renamed', 'agent-warden'), now: T0 });
    expect(renamed.reason).toMatch(/names/);
    expect(new X509Certificate(renamed.material.cert).checkHost('renamed.agent-warden.svc')).toBe('renamed.agent-warden.svc');
  });

  it('re-issues when the serving key does not belong to the certificate', async () => {
    const first = (await plan(undefined, T0)).material;
    const other = (await plan(undefined, T0)).material;
    const fixed = await plan({ ...first, key: other.key }, T0);
    expect(fixed.reason).toMatch(/serving key does not match/);
    expect(new X509Certificate(fixed.material.cert).checkPrivateKey(createPrivateKey(fixed.material.key))).toBe(true);
  });
});
