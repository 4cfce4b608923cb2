// The webhook's own PKI, pure: PEM in, PEM out, no Kubernetes and no I/O. A CA (ECDSA P-256,
// 1 year) signs a serving certificate for the webhook Service (90 days); planCertificates decides
// from what the Secret holds now what it should hold, rotating when a third of a lifetime is left.
import * as nodeCrypto from 'node:crypto';
import type * as X509 from '@peculiar/x509';

const DAY_MS = 86_400_000;
/** Backdate notBefore so an API server whose clock lags ours still accepts a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;
export const CA_VALIDITY_DAYS = 365;
export const SERVING_VALIDITY_DAYS = 90;

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface PemPair {
  cert: string;
  /** PKCS#8 PEM. */
  key: string;
}

/** What the webhook Secret holds. */
export interface WebhookCertMaterial {
  /** PEM bundle: the current CA first, then older CAs kept until they expire (the overlap). */
  caBundle: string;
  /** The current CA's key (PKCS#8 PEM). */
  caKey: string;
  /** Serving certificate, signed by the current CA. */
  cert: string;
  key: string;
}

export interface CertPlan {
  material: WebhookCertMaterial;
  /** True when material differs from what was passed in (write the Secret). */
  changed: boolean;
  /** Why it changed, for the log; undefined when unchanged. */
  reason?: string;
}

let x509Module: typeof X509 | undefined;

/**
 * @peculiar/x509 registers its algorithms with tsyringe, which refuses to load without a Reflect
 * metadata polyfill and, while x509 loads, asks Reflect.getMetadata / getOwnMetadata for each
 * registered class's constructor parameters. x509's classes take none and carry no metadata, so
 * both answer undefined. The stand-in lives only while the module loads: left in place it would
 * pass for reflect-metadata to any other code that feature-detects it.
 */
function x509(): typeof X509 {
  if (x509Module) return x509Module;
  const r = Reflect as typeof Reflect & { getMetadata?: () => undefined; getOwnMetadata?: () => undefined };
  const shim = r.getMetadata === undefined && r.getOwnMetadata === undefined;
  if (shim) r.getMetadata = r.getOwnMetadata = (): undefined => undefined;
  let mod: typeof X509;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('@peculiar/x509') as typeof X509;
  } finally {
    if (shim) {
      delete r.getMetadata;
      delete r.getOwnMetadata;
    }
  }
  mod.cryptoProvider.set(nodeCrypto.webcrypto as unknown as Parameters<typeof mod.cryptoProvider.set>[0]);
  x509Module = mod;
  return mod;
}

type CryptoKey = nodeCrypto.webcrypto.CryptoKey;
type CryptoKeyPair = nodeCrypto.webcrypto.CryptoKeyPair;
const subtle = (): nodeCrypto.webcrypto.SubtleCrypto => nodeCrypto.webcrypto.subtle;

/** The names the API server may dial the webhook Service by. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** Split a PEM bundle into normalised certificate blocks (each ending in a newline). */
export function splitPemBundle(pem: string): string[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => b.replace(/\r\n/g, '\n') + '\n');
}

function randomSerial(): string {
  const b = nodeCrypto.randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x01; // positive and 16 bytes long (RFC 5280: at most 20 octets)
  return b.toString('hex');
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END)[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

async function newKeyPair(): Promise<{ keys: CryptoKeyPair; keyPem: string }> {
  const keys = await subtle().generateKey(EC_ALG, true, ['sign', 'verify']);
  const pkcs8 = await subtle().exportKey('pkcs8', keys.privateKey);
  return { keys, keyPem: toPem(pkcs8, 'PRIVATE KEY') };
}

async function importSigningKey(keyPem: string): Promise<CryptoKey> {
  try {
    return await subtle().importKey('pkcs8', pemBody(keyPem), EC_ALG, false, ['sign']);
  } catch (err) {
    throw new Error(`CA key is not an ECDSA P-256 PKCS#8 key: ${(err as Error).message}`);
  }
}

export interface GenerateCaOptions {
  now: Date;
  validityDays?: number;
}

/** A self-signed CA that may sign leaf certificates only (pathLen 0). */
export async function generateCa(opts: GenerateCaOptions): Promise<PemPair> {
  const x = x509();
  const { keys, keyPem } = await newKeyPair();
  const notBefore = new Date(opts.now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(opts.now.getTime() + (opts.validityDays ?? CA_VALIDITY_DAYS) * DAY_MS);
  const cert = await x.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // The time in the name keeps successive CAs distinguishable in a bundle and in logs.
    name: `CN=agent-warden-webhook-ca-${Math.floor(opts.now.getTime() / 1000)}, O=agent-warden`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      new x.BasicConstraintsExtension(true, 0, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign, true),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: keyPem };
}

export interface IssueServingCertOptions {
  ca: PemPair;
  dnsNames: string[];
  now: Date;
  validityDays?: number;
}

/** A serverAuth certificate for dnsNames, signed by ca, never outliving it. */
export async function issueServingCert(opts: IssueServingCertOptions): Promise<PemPair> {
  if (opts.dnsNames.length === 0) throw new Error('issueServingCert: dnsNames is empty');
  const x = x509();
  const caCert = new x.X509Certificate(opts.ca.cert);
  const signingKey = await importSigningKey(opts.ca.key);
  const { keys, keyPem } = await newKeyPair();
  const wanted = opts.now.getTime() + (opts.validityDays ?? SERVING_VALIDITY_DAYS) * DAY_MS;
  const cert = await x.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${opts.dnsNames[0]}`,
    issuer: caCert.subject,
    notBefore: new Date(opts.now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(Math.min(wanted, caCert.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      new x.BasicConstraintsExtension(false, undefined, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
      new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.serverAuth]),
      new x.SubjectAlternativeNameExtension(opts.dnsNames.map((value) => ({ type: 'dns' as const, value }))),
      await x.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: keyPem };
}

function parseCert(pem: string): nodeCrypto.X509Certificate | undefined {
  try {
    return new nodeCrypto.X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function dnsNamesOf(cert: nodeCrypto.X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
}

function sameSet(a: string[], b: string[]): boolean {
  const sa = new Set(a);
  return sa.size === new Set(b).size && b.every((x) => sa.has(x));
}

/** Less than a third of the lifetime left, or not valid yet beyond the skew we allow. */
function lifetimeReason(cert: nodeCrypto.X509Certificate, now: Date, what: string): string | undefined {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (from > now.getTime() + CLOCK_SKEW_MS) return `${what} is not valid before ${cert.validFrom}`;
  if (to - now.getTime() < (to - from) / 3) return `${what} expires ${cert.validTo} (less than a third of its lifetime left)`;
  return undefined;
}

export interface RotationExpectations {
  /** The SAN DNS names the certificate must carry, exactly. */
  dnsNames?: string[];
  /** PEM of the CA that must have issued (and signed) it. */
  issuer?: string;
}

/** Why cert must be replaced at now, or undefined when it is fine. */
export function rotationReason(certPem: string, now: Date, expect: RotationExpectations = {}): string | undefined {
  const cert = parseCert(certPem);
  if (!cert) return 'certificate does not parse';
  const life = lifetimeReason(cert, now, 'certificate');
  if (life) return life;
  if (expect.dnsNames && !sameSet(dnsNamesOf(cert), expect.dnsNames)) {
    return `certificate names ${dnsNamesOf(cert).join(',') || '(none)'}, want ${expect.dnsNames.join(',')}`;
  }
  if (expect.issuer !== undefined) {
    const ca = parseCert(expect.issuer);
    if (!ca || !cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'certificate was not issued by the current CA';
  }
  return undefined;
}

/** True when less than a third of cert's lifetime remains at now, or its SANs/issuer do not match. */
export function needsRotation(certPem: string, now: Date, expect: RotationExpectations = {}): boolean {
  return rotationReason(certPem, now, expect) !== undefined;
}

function keyMatches(cert: nodeCrypto.X509Certificate, keyPem: string): boolean {
  try {
    return cert.checkPrivateKey(nodeCrypto.createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** Why the bundle's first CA (with caKey) cannot keep signing, or undefined when it can. */
function caReason(caPem: string | undefined, caKey: string | undefined, now: Date): string | undefined {
  if (!caPem || !caKey) return 'no CA yet';
  const ca = parseCert(caPem);
  if (!ca) return 'CA certificate does not parse';
  if (!ca.ca) return 'CA certificate is not a CA';
  if (!keyMatches(ca, caKey)) return 'CA key does not match the CA certificate';
  return lifetimeReason(ca, now, 'CA');
}

/** Old CAs stay in the bundle until they expire, so a cached bundle and old connections keep verifying. */
function stillTrusted(pem: string, now: Date): boolean {
  const c = parseCert(pem);
  return !!c && c.ca && Date.parse(c.validTo) > now.getTime();
}

export interface PlanOptions {
  dnsNames: string[];
  now: Date;
  caValidityDays?: number;
  servingValidityDays?: number;
}

/**
 * The certificates the Secret should hold, given what it holds now (undefined: no Secret). A CA
 * rotation re-issues the serving certificate at once, and keeps the old CA in the bundle.
 */
export async function planCertificates(current: Partial<WebhookCertMaterial> | undefined, opts: PlanOptions): Promise<CertPlan> {
  const bundle = splitPemBundle(current?.caBundle ?? '');
  const reasonCa = caReason(bundle[0], current?.caKey, opts.now);
  const ca: PemPair = reasonCa
    ? await generateCa({ now: opts.now, validityDays: opts.caValidityDays })
    : { cert: bundle[0], key: current?.caKey ?? '' };
  const older = (reasonCa ? bundle : bundle.slice(1)).filter((pem) => pem !== ca.cert && stillTrusted(pem, opts.now));
  const caBundle = [...new Set([ca.cert, ...older])].join('');

  let reasonServing: string | undefined = reasonCa ? `new CA (${reasonCa})` : undefined;
  if (!reasonServing) {
    if (!current?.cert || !current.key) reasonServing = 'no serving certificate yet';
    else reasonServing = rotationReason(current.cert, opts.now, { dnsNames: opts.dnsNames, issuer: ca.cert });
    if (!reasonServing && !keyMatches(new nodeCrypto.X509Certificate(current?.cert ?? ''), current?.key ?? '')) {
      reasonServing = 'serving key does not match the serving certificate';
    }
  }
  const serving: PemPair = reasonServing
    ? await issueServingCert({ ca, dnsNames: opts.dnsNames, now: opts.now, validityDays: opts.servingValidityDays })
    : { cert: current?.cert ?? '', key: current?.key ?? '' };

  const material: WebhookCertMaterial = { caBundle, caKey: ca.key, cert: serving.cert, key: serving.key };
  const reason = reasonServing ?? (caBundle !== current?.caBundle ? 'CA bundle pruned or normalised' : undefined);
  return { material, changed: reason !== undefined, reason };
}
