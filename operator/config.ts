// The operator's configuration file (`warden operator --config FILE`), rendered by the chart
// (charts/agent-warden/templates/_helpers.tpl, agent-warden.operatorConfig):
//
//   sidecar: {image, imagePullPolicy, resources: {requests: {cpu, memory}, limits: {...}}, lockdownImage,
//             ports: {admin: 15000, egress: 15001, health: 15021},   # move them to run beside Istio
//             runAsUser: 1337, runAsGroup: 1338}                     # not 1337 beside Istio
//   lockdown: false                       # lock down every injected pod's egress
//   otlp: {endpoint, protocol,            # handed to the sidecars
//          headersSecret: {name, key},    # OTEL_EXPORTER_OTLP_HEADERS from a Secret in each agent namespace
//          caConfigMap: {name, key},      # the collector's CA from a ConfigMap in each agent namespace
//          clientCertSecret: name}        # a kubernetes.io/tls Secret there, for mTLS
//   webhook: {port: 9443, serviceName, secretName, certMode: self | cert-manager,
//             mutatingName, validatingName}   # the configuration names default to serviceName
//   approvals: {ttl: 24h}                 # decided ApprovalRequests are deleted after this
//
// parseOperatorConfig is pure (text in, config or errors naming the field out).
import { parse } from 'yaml';
import { parseDuration } from '../common/policy/syntax';
import { InjectorConfigError, resolveInjectorConfig, type InjectorConfig, type KeyRef } from './inject/config';

export interface WebhookSettings {
  port: number;
  serviceName: string;
  secretName: string;
  certMode: 'self' | 'cert-manager';
  mutatingName: string;
  validatingName: string;
}

export interface OperatorConfig {
  injector: InjectorConfig;
  webhook: WebhookSettings;
  approvals: { ttlMs: number };
}

export class OperatorConfigError extends Error {
  readonly code = 'OPERATOR_CONFIG_INVALID';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: invalid operator configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

const TOP_KEYS = ['sidecar', 'lockdown', 'otlp', 'webhook', 'approvals'];
const SIDECAR_KEYS = [
  'image',
  'imagePullPolicy',
  'resources',
  'lockdownImage',
  'tokenAudience',
  'tokenExpirationSeconds',
  'ports',
  'runAsUser',
  'runAsGroup',
];
const WEBHOOK_KEYS = ['port', 'serviceName', 'secretName', 'certMode', 'mutatingName', 'validatingName'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export function parseOperatorConfig(text: string, source: string, operatorNamespace: string): OperatorConfig {
  let doc: unknown;
  try {
    doc = parse(text) ?? {};
  } catch (e) {
    throw new OperatorConfigError(source, [`YAML syntax error: ${(e as Error).message.split('\n')[0]}`]);
  }
  const problems: string[] = [];
  const root = section(doc, '', TOP_KEYS, problems);
  const sidecar = section(root.sidecar, 'sidecar', SIDECAR_KEYS, problems);
  const otlp = section(root.otlp, 'otlp', ['endpoint', 'protocol', 'headersSecret', 'caConfigMap', 'clientCertSecret'], problems);
  const webhookIn = section(root.webhook, 'webhook', WEBHOOK_KEYS, problems);
  const portsIn = section(sidecar.ports, 'sidecar.ports', ['admin', 'egress', 'health'], problems);
  const approvalsIn = section(root.approvals, 'approvals', ['ttl'], problems);

  if (typeof sidecar.image !== 'string' || sidecar.image === '')
    problems.push('sidecar.image: required (the warden image the webhook injects)');
  if (root.lockdown !== undefined && typeof root.lockdown !== 'boolean')
    problems.push(`lockdown: must be true or false (got ${JSON.stringify(root.lockdown)})`);
  const str = (v: unknown, field: string): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string') problems.push(`${field}: must be a string (got ${JSON.stringify(v)})`);
    return typeof v === 'string' ? v : undefined;
  };

  const port = webhookIn.port ?? 9443;
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)
    problems.push(`webhook.port: must be a port number 1-65535 (got ${JSON.stringify(port)})`);
  const certMode = webhookIn.certMode ?? 'self';
  if (certMode !== 'self' && certMode !== 'cert-manager')
    problems.push(`webhook.certMode: must be self or cert-manager (got ${JSON.stringify(certMode)})`);
  const serviceName = str(webhookIn.serviceName, 'webhook.serviceName') ?? 'agent-warden-webhook';
  const names = {
    serviceName,
    secretName: str(webhookIn.secretName, 'webhook.secretName') ?? `${serviceName}-tls`,
    mutatingName: str(webhookIn.mutatingName, 'webhook.mutatingName') ?? serviceName,
    validatingName: str(webhookIn.validatingName, 'webhook.validatingName') ?? serviceName,
  };
  if (!DNS_LABEL.test(names.serviceName))
    problems.push(`webhook.serviceName: must be a DNS label (got ${JSON.stringify(names.serviceName)})`);
  for (const k of ['secretName', 'mutatingName', 'validatingName'] as const) {
    if (!DNS_SUBDOMAIN.test(names[k])) problems.push(`webhook.${k}: must be a DNS subdomain name (got ${JSON.stringify(names[k])})`);
  }

  let ttlMs = 24 * 3_600_000;
  if (approvalsIn.ttl !== undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a non-string ttl is stringified and refused by parseDuration
      ttlMs = parseDuration(String(approvalsIn.ttl));
    } catch (e) {
      problems.push(`approvals.ttl: ${(e as Error).message}`);
    }
  }

  let injector: InjectorConfig | undefined;
  // checked even when other sections are wrong, so one run names every mistake
  if (typeof sidecar.image === 'string' && sidecar.image !== '') {
    try {
      injector = resolveInjectorConfig({
        image: sidecar.image,
        imagePullPolicy: sidecar.imagePullPolicy as InjectorConfig['imagePullPolicy'],
        resources: isObj(sidecar.resources) ? (sidecar.resources as unknown as InjectorConfig['resources']) : undefined,
        lockdownImage: str(sidecar.lockdownImage, 'sidecar.lockdownImage'),
        ports: portsIn, // checked by resolveInjectorConfig
        runAsUser: sidecar.runAsUser as number | undefined,
        runAsGroup: sidecar.runAsGroup as number | undefined,
        lockdownByDefault: typeof root.lockdown === 'boolean' ? root.lockdown : undefined,
        operatorNamespace,
        tokenAudience: str(sidecar.tokenAudience, 'sidecar.tokenAudience'),
        tokenExpirationSeconds: sidecar.tokenExpirationSeconds as number | undefined,
        otlpEndpoint: str(otlp.endpoint, 'otlp.endpoint'),
        otlpProtocol: str(otlp.protocol, 'otlp.protocol'),
        otlpHeadersSecret: keyRef(otlp.headersSecret, 'otlp.headersSecret', problems),
        otlpCaConfigMap: keyRef(otlp.caConfigMap, 'otlp.caConfigMap', problems),
        otlpClientCertSecret: str(otlp.clientCertSecret, 'otlp.clientCertSecret'),
      });
    } catch (e) {
      if (!(e instanceof InjectorConfigError)) throw e;
      // The injector names its fields without the section; these live under sidecar/otlp here.
      problems.push(
        ...e.message
          .replace(/^invalid injector configuration: /, '')
          .split('; ')
          .map(prefixInjectorField),
      );
    }
  }
  if (problems.length > 0 || !injector) throw new OperatorConfigError(source, problems);
  return { injector, webhook: { port: port as number, certMode: certMode as WebhookSettings['certMode'], ...names }, approvals: { ttlMs } };
}

function prefixInjectorField(p: string): string {
  if (p.startsWith('otlpProtocol')) return p.replace(/^otlpProtocol/, 'otlp.protocol');
  if (p.startsWith('otlpEndpoint')) return p.replace(/^otlpEndpoint/, 'otlp.endpoint');
  if (p.startsWith('otlpHeadersSecret')) return p.replace(/^otlpHeadersSecret/, 'otlp.headersSecret');
  if (p.startsWith('otlpCaConfigMap')) return p.replace(/^otlpCaConfigMap/, 'otlp.caConfigMap');
  if (p.startsWith('otlpClientCertSecret')) return p.replace(/^otlpClientCertSecret/, 'otlp.clientCertSecret');
  if (p.startsWith('lockdownByDefault')) return p.replace(/^lockdownByDefault/, 'lockdown');
  return `sidecar.${p}`;
}

/** An optional {name, key} mapping; the injector checks the values. */
function keyRef(v: unknown, path: string, problems: string[]): KeyRef | undefined {
  if (v === undefined || v === null) return undefined;
  const ref = section(v, path, ['name', 'key'], problems);
  return isObj(v) ? { name: ref.name as string, key: ref.key as string } : undefined;
}

/** An optional mapping with known keys; problems name unknown keys with their path. */
function section(v: unknown, path: string, keys: string[], problems: string[]): Obj {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) {
    problems.push(`${path || 'the document'}: must be a mapping`);
    return {};
  }
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) problems.push(`${path ? `${path}.` : ''}${k}: unknown field (known: ${keys.join(', ')})`);
  }
  return v;
}
