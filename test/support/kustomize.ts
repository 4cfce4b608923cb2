// What `kubectl apply -k DIR` would send, for kustomizations that only list files and generate
// ConfigMaps from files (examples/kubernetes). Tests compare it with the real `kubectl kustomize`
// where that binary runs (test/support/k8s-tools), and use it alone elsewhere. Anything else in a
// kustomization (patches, name prefixes, ...) is refused rather than silently ignored.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any; // manifests are read field by field
}

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  sortOptions?: { order?: string };
  resources?: string[];
  configMapGenerator?: Array<{ name: string; namespace?: string; files?: string[] }>;
  generatorOptions?: { disableNameSuffixHash?: boolean };
}

const UNDERSTOOD = new Set(['apiVersion', 'kind', 'sortOptions', 'resources', 'configMapGenerator', 'generatorOptions']);

export function parseManifests(text: string): K8sObject[] {
  return YAML.parseAllDocuments(text, { uniqueKeys: true })
    .map((d) => {
      if (d.errors.length > 0) throw new Error(d.errors.map((e) => e.message).join('; '));
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** The objects of `dir`'s kustomization.yaml in apply order (fifo: resources as listed, then generated ConfigMaps). */
export function resolveKustomization(dir: string): K8sObject[] {
  const k = YAML.parse(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  const unknown = Object.keys(k).filter((key) => !UNDERSTOOD.has(key));
  if (unknown.length > 0) throw new Error(`${dir}/kustomization.yaml: this resolver does not understand ${unknown.join(', ')}`);
  if (k.sortOptions?.order !== 'fifo') throw new Error(`${dir}/kustomization.yaml: expected sortOptions.order: fifo`);
  if (k.configMapGenerator?.length && k.generatorOptions?.disableNameSuffixHash !== true)
    throw new Error(`${dir}/kustomization.yaml: expected generatorOptions.disableNameSuffixHash: true`);
  const objects = (k.resources ?? []).flatMap((file) => parseManifests(fs.readFileSync(path.join(dir, file), 'utf8')));
  for (const gen of k.configMapGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const entry of gen.files ?? []) {
      // `key=path` names the key; a bare path uses the file's name.
      const eq = entry.indexOf('=');
      const [key, file] = eq < 0 ? [path.basename(entry), entry] : [entry.slice(0, eq), entry.slice(eq + 1)];
      data[key] = fs.readFileSync(path.join(dir, file), 'utf8');
    }
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name, namespace: gen.namespace }, data });
  }
  return objects;
}

/** The one object of a kind (and name, and namespace), or a clear error. */
export function one(objects: readonly K8sObject[], kind: string, name?: string, namespace?: string): K8sObject {
  const matches = objects.filter(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata.name === name) &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );
  if (matches.length !== 1)
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}${namespace ? ` in ${namespace}` : ''}, found ${matches.length}`);
  return matches[0];
}

/** A Secret's values, from stringData or base64 data. */
export function secretValues(secret: K8sObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((secret.data ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return { ...out, ...((secret.stringData ?? {}) as Record<string, string>) };
}
