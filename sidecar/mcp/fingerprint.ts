// A tool definition's fingerprint (decision 2 of issue 13): `sha256:` + the hex SHA-256 of the
// canonical JSON (keys sorted) of the fields that tell the model what the tool does. Anything
// else a listing carries (`_meta`, icons, execution hints) may change without the tool changing.
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../common/k8s/canonical-json';

const FINGERPRINTED = ['name', 'title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const;

export function toolFingerprint(tool: Record<string, unknown>): string {
  const picked: Record<string, unknown> = {};
  for (const k of FINGERPRINTED) if (tool[k] !== undefined) picked[k] = tool[k];
  return 'sha256:' + createHash('sha256').update(canonicalJson(picked)).digest('hex');
}
