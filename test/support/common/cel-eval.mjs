// Test helper: evaluates the CRD's x-kubernetes-validations CEL rules against documents the way
// the API server does (each rule on every node of its schema that is present), so tests can
// check that semantic.ts and the API server agree. Runs as a plain Node ESM process because the
// CEL library is ESM-only. stdin: {"crd": <openAPIV3Schema>, "docs": [...]};
// stdout: per document, a list of {path, rule, message}.
import { evaluate, parse } from '@marcbachmann/cel-js';

const input = JSON.parse(await readStdin());

function readStdin() {
  return new Promise((resolve, reject) => {
    let s = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (c) => (s += c));
    process.stdin.on('end', () => resolve(s));
    process.stdin.on('error', reject);
  });
}

// Kubernetes integer fields are CEL ints; cel-js treats bigint as int and number as double.
function toCel(v) {
  if (Array.isArray(v)) return v.map(toCel);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  return v;
}

function walk(schema, value, path, out) {
  if (value === undefined || value === null || schema === undefined) return;
  for (const v of schema['x-kubernetes-validations'] ?? []) {
    let ok;
    try {
      ok = evaluate(v.rule, { self: toCel(value) });
    } catch (e) {
      out.push({ path, rule: v.rule, message: `CEL error: ${e.message}` });
      continue;
    }
    if (ok !== true) out.push({ path, rule: v.rule, message: v.message });
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => walk(schema.items, item, `${path}[${i}]`, out));
  } else if (typeof value === 'object') {
    for (const [k, item] of Object.entries(value)) {
      const child = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      walk(child, item, path === '' ? k : `${path}.${k}`, out);
    }
  }
}

function allRules(schema, out = []) {
  if (schema === null || typeof schema !== 'object') return out;
  for (const v of schema['x-kubernetes-validations'] ?? []) out.push(v.rule);
  for (const child of Object.values(schema.properties ?? {})) allRules(child, out);
  allRules(schema.items, out);
  if (typeof schema.additionalProperties === 'object') allRules(schema.additionalProperties, out);
  return out;
}

const parseErrors = [];
for (const rule of allRules(input.crd)) {
  try {
    parse(rule);
  } catch (e) {
    parseErrors.push({ rule, message: e.message });
  }
}
const results = input.docs.map((doc) => {
  const out = [];
  walk(input.crd, doc, '', out);
  return out;
});
process.stdout.write(JSON.stringify({ parseErrors, rules: allRules(input.crd).length, results }));
