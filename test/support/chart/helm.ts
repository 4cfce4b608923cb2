// The chart rendered by the real helm binary (from test/support/k8s-tools), parsed into objects.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import YAML from 'yaml';
import { findK8sTools, type K8sToolsResult } from '../k8s-tools';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const CHART = path.join(ROOT, 'charts', 'agent-warden');
export const NS = 'warden-system';
export const RELEASE = 'agent-warden';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any; // rendered manifests are read field by field
}

export const k8sTools: K8sToolsResult = findK8sTools();
/** The helm binary, or '' when the tools are unavailable (the suites then skip). */
export const HELM = k8sTools.ok ? k8sTools.tools.helm : '';

export function helm(args: string[], env: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(HELM, args, {
    encoding: 'utf8',
    env: { ...process.env, HELM_CACHE_HOME: path.join(ROOT, 'node_modules', '.cache', 'helm'), ...env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function setArgs(values: Record<string, string>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
}

export function parseManifests(text: string): K8sObject[] {
  return YAML.parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

export function render(values: Record<string, string> = {}, extra: string[] = [], release = RELEASE): K8sObject[] {
  const r = helm(['template', release, CHART, '--namespace', NS, ...setArgs(values), ...extra]);
  if (r.code !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseManifests(r.stdout);
}

export function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const matches = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (matches.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${matches.length}`);
  return matches[0];
}

/** The operator's config.yaml text, as the operator reads it. */
export function operatorConfigText(objects: K8sObject[]): string {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-config'));
  if (!cm) throw new Error('no operator ConfigMap rendered');
  return cm.data['config.yaml'] as string;
}

export function operatorConfig(objects: K8sObject[]): Record<string, any> {
  return YAML.parse(operatorConfigText(objects));
}
