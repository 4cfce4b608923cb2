// The formats Kubernetes knows and the AccessPolicy CRD uses (ajv has none built in without
// ajv-formats). Its own module because the precompiled validator (schema-validator.generated.ts)
// requires it by name; schema.ts gives the same definitions to ajv when it compiles at runtime.
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export const formats = {
  int32: { type: 'number' as const, validate: (n: number): boolean => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 },
  int64: { type: 'number' as const, validate: (n: number): boolean => Number.isSafeInteger(n) },
  'date-time': { type: 'string' as const, validate: (s: string): boolean => RFC3339.test(s) && !Number.isNaN(Date.parse(s)) },
};
