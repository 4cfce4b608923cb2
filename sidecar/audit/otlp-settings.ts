// The OTLP settings from the standard environment and the sidecar's resource. Cheap to load: the
// main thread needs them (to start the export thread and the metrics export) without the span and
// log exporters, which only the export thread loads (exporters.ts).
//
// Variables: OTEL_EXPORTER_OTLP_ENDPOINT (and the per-signal *_ENDPOINT variables),
// OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf by default, http/json), OTEL_EXPORTER_OTLP_HEADERS /
// _TIMEOUT / _COMPRESSION / certificates (read by the exporters themselves), OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES for the resource.
import type { Resource } from '@opentelemetry/resources';

export type OtlpProtocol = 'http/protobuf' | 'http/json';

export interface OtlpSignalSettings {
  protocol: OtlpProtocol;
  url: string;
}

export interface OtlpSettings {
  traces: OtlpSignalSettings;
  logs: OtlpSignalSettings;
  metrics: OtlpSignalSettings;
}

export class OtlpConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OtlpConfigError';
  }
}

function protocol(env: NodeJS.ProcessEnv, signal: 'TRACES' | 'LOGS' | 'METRICS'): OtlpProtocol {
  const raw = (env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim();
  if (raw === 'http/protobuf' || raw === 'http/json') return raw;
  const name =
    env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] !== undefined ? `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  throw new OtlpConfigError(`${name}="${raw}" is not supported: use http/protobuf (the default) or http/json`);
}

/**
 * The OTLP settings, or undefined when no collector is configured (no endpoint, or
 * OTEL_SDK_DISABLED=true): records are then kept in the spool for `warden replay` only.
 */
export function otlpSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): OtlpSettings | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const any = ['', 'TRACES_', 'LOGS_', 'METRICS_'].some((s) => (env[`OTEL_EXPORTER_OTLP_${s}ENDPOINT`] ?? '').trim() !== '');
  if (!any) return undefined;
  const signal = (name: 'TRACES' | 'LOGS' | 'METRICS'): OtlpSignalSettings => ({ protocol: protocol(env, name), url: endpoint(env, name) });
  return { traces: signal('TRACES'), logs: signal('LOGS'), metrics: signal('METRICS') };
}

/** Per the OTLP exporter spec: a signal's own endpoint is used as is; the shared one gets /v1/<signal>. */
function endpoint(env: NodeJS.ProcessEnv, signal: 'TRACES' | 'LOGS' | 'METRICS'): string {
  const own = (env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`] ?? '').trim();
  const raw = own || `${(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').trim().replace(/\/+$/, '')}/v1/${signal.toLowerCase()}`;
  const name = own ? `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT` : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new OtlpConfigError(`${name} is not a URL: "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new OtlpConfigError(`${name} must be an http or https URL, not "${url.protocol}"`);
  return url.href;
}

/** service.name defaults to warden-sidecar; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override. */
export function sidecarResource(env: NodeJS.ProcessEnv = process.env): Resource {
  // Loaded when called (in the export thread): the main thread needs no OpenTelemetry package.
  const { defaultResource, envDetector, detectResources, resourceFromAttributes } =
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const detected = detectResources({ detectors: [envDetector] });
  const base = defaultResource().merge(resourceFromAttributes({ 'service.name': 'warden-sidecar', 'service.version': '0.1.0' }));
  const own = resourceFromAttributes(env.OTEL_SERVICE_NAME ? { 'service.name': env.OTEL_SERVICE_NAME } : {});
  return base.merge(detected).merge(own);
}
