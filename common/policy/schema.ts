// Offline validation with the CRD's own openAPIV3Schema, so `warden validate`, the sidecar and the
// API server judge a policy by the same schema. Kubernetes-only keywords are translated to their
// JSON Schema meaning (or dropped when ajv cannot express them; semantic.ts covers those).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type Ajv from 'ajv';
import type { ValidateFunction } from 'ajv';
import YAML from 'yaml';
import { translateAjvErrors } from './ajv-errors';
import { formats } from './schema-formats';
import { dedupeErrors, type PolicyError, type ValidationResult } from './errors';
import { checkSemantics } from './semantic';
import type { AccessPolicy } from './types';

export const API_VERSION = 'agentwarden.io/v1alpha1';
export const KIND = 'AccessPolicy';
const PACKAGE_NAME = 'agent-warden';
const CRD_FILE = path.join('crds', 'accesspolicy.yaml');

type JsonSchema = Record<string, unknown>;

/** Walks up from `start` to the directory whose package.json names this project (works from `dist/` too). */
export function findRepoRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && readPackageName(pkg) === PACKAGE_NAME) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package root above ${start}`);
    dir = parent;
  }
}

function readPackageName(file: string): string | undefined {
  try {
    const name = (JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: unknown }).name;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

export function crdPath(): string {
  return path.join(findRepoRoot(), CRD_FILE);
}

let cachedCrdSchema: JsonSchema | undefined;

/** The v1alpha1 openAPIV3Schema exactly as written in crds/accesspolicy.yaml. */
export function loadCrdSchema(): JsonSchema {
  if (cachedCrdSchema) return cachedCrdSchema;
  const crd = YAML.parse(fs.readFileSync(crdPath(), 'utf8')) as {
    spec?: { versions?: Array<{ name: string; schema?: { openAPIV3Schema?: JsonSchema } }> };
  };
  const version = crd.spec?.versions?.find((v) => v.name === 'v1alpha1');
  const schema = version?.schema?.openAPIV3Schema;
  if (!schema) throw new Error(`${CRD_FILE} has no v1alpha1 openAPIV3Schema`);
  cachedCrdSchema = schema;
  return schema;
}

/**
 * Kubernetes structural schema → plain JSON Schema for ajv:
 * - objects with `properties` reject unknown fields (the API server prunes them silently, or
 *   rejects them under kubectl's strict field validation; offline we always want to hear about typos);
 * - `x-kubernetes-list-type: set` becomes `uniqueItems`; int-or-string becomes a type union;
 * - other `x-kubernetes-*` keywords (CEL rules, map keys) are dropped: semantic.ts checks them.
 */
export function toAjvSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toAjvSchema);
  if (node === null || typeof node !== 'object') return node;
  const src = node as JsonSchema;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(src)) {
    if (key.startsWith('x-kubernetes-')) continue;
    if (key === 'properties') out.properties = mapValues(value as JsonSchema, toAjvSchema);
    else if (key === 'enum' || key === 'default' || key === 'required') out[key] = value;
    else out[key] = toAjvSchema(value);
  }
  if (src['x-kubernetes-list-type'] === 'set') out.uniqueItems = true;
  if (src['x-kubernetes-int-or-string'] === true) out.type = ['integer', 'string'];
  const preserve = src['x-kubernetes-preserve-unknown-fields'] === true;
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined && !preserve) {
    out.additionalProperties = false;
  }
  return out;
}

function mapValues(obj: JsonSchema, fn: (v: unknown) => unknown): JsonSchema {
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, fn(v)]));
}

// A CRD schema may not describe metadata, apiVersion or kind (the API server owns them); offline
// there is no API server, so the same checks it would make are added here.
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const STRING_MAP = { type: 'object', additionalProperties: { type: 'string' } };

function addApiServerChecks(schema: JsonSchema): JsonSchema {
  const props = schema.properties as JsonSchema;
  return {
    ...schema,
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    properties: {
      ...props,
      apiVersion: { ...(props.apiVersion as JsonSchema), enum: [API_VERSION] },
      kind: { ...(props.kind as JsonSchema), enum: [KIND] },
      metadata: {
        ...(props.metadata as JsonSchema),
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN },
          namespace: { type: 'string', minLength: 1, maxLength: 63, pattern: DNS_LABEL },
          labels: STRING_MAP,
          annotations: STRING_MAP,
        },
        additionalProperties: true,
      },
    },
  };
}

let cachedValidator: ValidateFunction | undefined;

/** ajv with the options and formats the validator is compiled with (at runtime, or ahead of time by standaloneValidatorSource). */
function newAjv(standalone: boolean): Ajv {
  // Loaded only here: the precompiled validator needs none of ajv's compiler (~60 ms to load).
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, synchronously
  const { default: AjvClass, _ } = require('ajv') as typeof import('ajv');
  const code = standalone ? { code: { source: true, formats: _`require("./schema-formats").formats` } } : {};
  const ajv = new AjvClass({ allErrors: true, useDefaults: true, verbose: true, strict: true, allowUnionTypes: true, ...code });
  for (const [name, format] of Object.entries(formats)) ajv.addFormat(name, format);
  return ajv;
}

function ajvSchema(): JsonSchema {
  return addApiServerChecks(toAjvSchema(loadCrdSchema()) as JsonSchema);
}

/** SHA-256 of the CRD file: the precompiled validator is used only for the CRD it was generated from. */
export function crdSha256(): string {
  return createHash('sha256').update(fs.readFileSync(crdPath())).digest('hex');
}

/**
 * The validator: the one precompiled from the CRD at build time (schema-validator.generated.ts,
 * ajv's standalone code) when it was generated from the CRD on disk, else compiled now. Compiling
 * costs ~200 ms of every sidecar's start and ~10 MB of its memory; the check keeps an edited CRD
 * from being judged by a stale validator (schema-validator.test.ts fails until it is regenerated).
 */
export function getSchemaValidator(): ValidateFunction {
  if (cachedValidator) return cachedValidator;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, synchronously
  const generated = require('./schema-validator.generated') as { CRD_SHA256: string; createValidator(): ValidateFunction };
  cachedValidator = generated.CRD_SHA256 === crdSha256() ? generated.createValidator() : newAjv(false).compile(ajvSchema());
  return cachedValidator;
}

/** The source of schema-validator.generated.ts (written by `make policy-validator`). */
export function standaloneValidatorSource(): string {
  const ajv = newAjv(true);
  const validate = ajv.compile(ajvSchema());
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, synchronously
  const { default: standaloneCode } = require('ajv/dist/standalone') as typeof import('ajv/dist/standalone');
  const code = standaloneCode(ajv, validate);
  return [
    '/* eslint-disable */',
    '// @ts-nocheck',
    '// GENERATED from crds/accesspolicy.yaml by standaloneValidatorSource() (common/policy/schema.ts): do not edit.',
    '// Regenerate with `make policy-validator` after changing the CRD, toAjvSchema or the ajv options.',
    `export const CRD_SHA256 = '${crdSha256()}';`,
    'export function createValidator() {',
    '  const module = { exports: {} };',
    code,
    '  return module.exports;',
    '}',
    '',
  ].join('\n');
}

/** Schema errors only; fills in the CRD's defaults in `doc` as the API server would. */
export function checkSchema(doc: unknown): PolicyError[] {
  const validate = getSchemaValidator();
  if (validate(doc)) return [];
  return translateAjvErrors(validate.errors ?? [], doc);
}

/**
 * The whole offline check: the CRD schema (with its defaults applied), then the semantic checks
 * that mirror the CRD's CEL rules. Semantic checks run even when the schema fails so one run
 * reports every mistake; a semantic error on a value the schema already flagged is dropped.
 * `doc` is not modified; on success `policy` is a defaulted copy.
 */
export function validateAccessPolicy(doc: unknown): ValidationResult<AccessPolicy> {
  const copy: unknown = doc === undefined ? undefined : structuredClone(doc);
  const schemaErrors = checkSchema(copy);
  // Only value errors overlap with semantic ones (a bad duration fails the pattern and the parser);
  // a missing or unknown field on an object says nothing about that object's other problems.
  const flagged = new Set(schemaErrors.filter((e) => e.field === undefined).map((e) => e.path));
  const semanticErrors = checkSemantics(copy).filter((e) => !flagged.has(e.path));
  const errors = dedupeErrors([...schemaErrors, ...semanticErrors]);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, policy: copy as AccessPolicy };
}
