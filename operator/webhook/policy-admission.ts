// Validating admission for AccessPolicy CREATE and UPDATE: the same checks as `warden validate`
// (the CRD schema compiled with ajv, then the semantic checks a schema cannot express: regexes
// compile, rule targets exist, masking columns parse), with messages that name the field.
import { formatPolicyError } from '../../common/policy/errors';
import { validateAccessPolicy } from '../../common/policy/schema';
import type { AdmissionHandler, AdmissionResponse, AdmissionReview } from './types';

/** The API server shows the message to kubectl users; past this many errors the rest are counted. */
const MAX_LISTED_ERRORS = 20;

export function createPolicyValidator(): AdmissionHandler {
  return (review: AdmissionReview): AdmissionResponse => validatePolicyReview(review);
}

export function validatePolicyReview(review: AdmissionReview): AdmissionResponse {
  const req = review.request;
  if (!req) return { uid: '', allowed: false, status: { code: 400, reason: 'BadRequest', message: 'AdmissionReview has no request' } };
  const uid = req.uid;
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return { uid, allowed: true };
  // Status writes go through the status subresource; the spec is not what changes there.
  if (req.subResource) return { uid, allowed: true };
  try {
    const result = validateAccessPolicy(req.object);
    if (result.ok) return { uid, allowed: true };
    const meta = (req.object as { metadata?: { name?: unknown } } | null | undefined)?.metadata;
    const name = typeof meta?.name === 'string' ? meta.name : (req.name ?? '');
    const lines = result.errors.slice(0, MAX_LISTED_ERRORS).map(formatPolicyError);
    if (result.errors.length > MAX_LISTED_ERRORS) lines.push(`... and ${result.errors.length - MAX_LISTED_ERRORS} more`);
    return {
      uid,
      allowed: false,
      status: { code: 422, reason: 'Invalid', message: `AccessPolicy ${JSON.stringify(name)} is invalid: ${lines.join('; ')}` },
    };
  } catch (err) {
    // Fail closed: a policy we cannot check must not reach the sidecars.
    return {
      uid,
      allowed: false,
      status: {
        code: 500,
        reason: 'InternalError',
        message: `Agent Warden could not validate the AccessPolicy: ${(err as Error).message}`,
      },
    };
  }
}
