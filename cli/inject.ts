// `warden inject -f FILE|- --policy POLICY.yaml`: prints the manifest with the sidecar injected into
// every Pod and workload pod template a policy selects, through the same injectPod the webhook
// uses. Other documents pass through unchanged. For GitOps pipelines and for seeing what the
// webhook would do.
import fs from 'node:fs/promises';
import YAML, { parseAllDocuments } from 'yaml';
import { INJECTION_ENABLED, INJECTION_LABEL } from '../common/k8s/names';
import { formatPolicyError } from '../common/policy/errors';
import { loadPolicyFile, type PolicyDocument } from '../common/policy/load';
import type { AccessPolicy } from '../common/policy/types';
import { readProcessStdin, type CliIo } from './context';
import { cannotRead } from './fs-errors';
import { DEFAULT_IMAGE_REPOSITORY, InjectorConfigError, resolveInjectorConfig, type InjectorConfig } from '../operator/inject/config';
import { injectPod } from '../operator/inject/mutate';
import { podTemplateOf, withPodTemplate } from '../operator/inject/workloads';
import { packageVersion } from './version';

const MAX_ALIAS_COUNT = 100;

type Obj = Record<string, unknown>;

export interface InjectOptions {
  policies: AccessPolicy[];
  config: InjectorConfig;
  /** Namespace for objects (and policies) that name none. */
  defaultNamespace: string;
}

export interface InjectOutcome {
  documents: unknown[];
  /** One line per object left alone, saying why. */
  notes: string[];
  /** One line per object that the webhook would refuse; any error means no output. */
  errors: string[];
}

/** Pure: documents in, documents out, with a note for each skip and an error for each refusal. */
export function injectDocuments(docs: readonly unknown[], opts: InjectOptions): InjectOutcome {
  const out: InjectOutcome = { documents: [], notes: [], errors: [] };
  const policies = opts.policies.map((p) =>
    p.metadata.namespace ? p : { ...p, metadata: { ...p.metadata, namespace: opts.defaultNamespace } },
  );
  for (const doc of docs) out.documents.push(injectOne(doc, { ...opts, policies }, out));
  return out;
}

function injectOne(doc: unknown, opts: InjectOptions, out: InjectOutcome): unknown {
  if (!isObj(doc)) return doc;
  if (doc.kind === 'List' && Array.isArray(doc.items)) return { ...doc, items: doc.items.map((item) => injectOne(item, opts, out)) };
  const template = podTemplateOf(doc);
  if (template === undefined) return doc;
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  const label = `${String(doc.kind)}/${typeof meta.name === 'string' ? meta.name : typeof meta.generateName === 'string' ? `${meta.generateName}*` : '?'}`;
  if (!isObj(template.spec) || !Array.isArray(template.spec.containers)) {
    out.errors.push(`${label}: no pod spec with containers`);
    return doc;
  }
  const namespace = typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : opts.defaultNamespace;
  const result = injectPod(template, {
    namespace,
    // Offline there is no namespace object: assume it is opted in, which is what the user asks for.
    namespaceLabels: { [INJECTION_LABEL]: INJECTION_ENABLED },
    policies: opts.policies,
    config: opts.config,
  });
  switch (result.outcome) {
    case 'skipped':
      out.notes.push(`${label}: not injected: ${result.reason}`);
      return doc;
    case 'refused':
      out.errors.push(`${label}: ${result.reason}`);
      return doc;
    case 'injected':
      for (const w of result.warnings) out.notes.push(`${label}: warning: ${w}`);
      return withPodTemplate(doc, result.pod);
  }
}

export interface InjectCliOptions {
  filename: string;
  policy: string[];
  image?: string;
  namespace?: string;
  lockdown?: boolean;
  output: 'yaml' | 'json';
}

/** Exit code: 0 printed, 1 unreadable input or a refusal, 2 a bad option value. */
export async function runInject(values: InjectCliOptions, io: CliIo): Promise<number> {
  const policies: AccessPolicy[] = [];
  for (const file of values.policy) {
    const loaded = await loadPolicies(file);
    if (typeof loaded === 'string') {
      io.stderr(loaded);
      return 1;
    }
    policies.push(...loaded);
  }
  if (policies.length === 0) {
    io.stderr(`warden inject: no AccessPolicy in ${values.policy.join(', ')}\n`);
    return 1;
  }

  let config: InjectorConfig;
  try {
    config = resolveInjectorConfig({
      image: values.image ?? `${DEFAULT_IMAGE_REPOSITORY}:${packageVersion()}`,
      lockdownByDefault: values.lockdown === true,
    });
  } catch (e) {
    if (!(e instanceof InjectorConfigError)) throw e;
    io.stderr(`warden inject: ${e.message}\n`);
    return 2;
  }

  const source = values.filename === '-' ? '<stdin>' : values.filename;
  let text: string;
  try {
    text = values.filename === '-' ? await (io.readStdin ?? readProcessStdin)() : await fs.readFile(values.filename, 'utf8');
  } catch (e) {
    io.stderr(`warden inject: ${cannotRead(source, e)}\n`);
    return 1;
  }
  const docs = parseManifest(text, source);
  if (typeof docs === 'string') {
    io.stderr(docs);
    return 1;
  }

  const namespaces = [...new Set(policies.map((p) => p.metadata.namespace).filter((n): n is string => !!n))];
  const defaultNamespace = values.namespace ?? (namespaces.length === 1 ? namespaces[0] : 'default');
  const result = injectDocuments(docs, { policies, config, defaultNamespace });
  for (const note of result.notes) io.stderr(`${source}: ${note}\n`);
  if (result.errors.length > 0) {
    for (const e of result.errors) io.stderr(`${source}: ${e}\n`);
    return 1;
  }
  io.stdout(render(result.documents, values.output));
  return 0;
}

async function loadPolicies(file: string): Promise<AccessPolicy[] | string> {
  let docs: PolicyDocument[];
  try {
    docs = await loadPolicyFile(file);
  } catch (e) {
    return `warden inject: ${cannotRead(file, e)}\n`;
  }
  const errors = docs.flatMap((d) =>
    d.status === 'invalid'
      ? d.errors.map(
          (e) => `${file}: ${d.name !== undefined ? `AccessPolicy ${d.name}` : `document ${d.index + 1}`}: ${formatPolicyError(e)}\n`,
        )
      : [],
  );
  if (errors.length > 0) return errors.join('');
  return docs.flatMap((d) => (d.status === 'valid' ? [d.policy] : []));
}

/** Every non-empty document of a YAML (or JSON) stream, or an error message naming the line. */
export function parseManifest(text: string, source: string): unknown[] | string {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [];
  const out: unknown[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const where = e.linePos ? ` at line ${e.linePos[0].line}` : '';
      return `warden inject: ${source}: YAML syntax error${where}: ${e.message.split('\n')[0]}\n`;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      return `warden inject: ${source}: cannot read YAML: ${(e as Error).message}\n`;
    }
    if (value === null || value === undefined) continue;
    if (!isObj(value)) return `warden inject: ${source}: document ${out.length + 1} is not a Kubernetes object\n`;
    out.push(value);
  }
  return out;
}

function render(docs: unknown[], format: 'yaml' | 'json'): string {
  if (format === 'json') {
    const value = docs.length === 1 ? docs[0] : { apiVersion: 'v1', kind: 'List', items: docs };
    return `${JSON.stringify(value, null, 2)}\n`;
  }
  return docs.map((d) => YAML.stringify(d, { lineWidth: 0 })).join('---\n');
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
