// Inject the target's credential (header, basic auth, or query parameter) from the secret store;
// 503 credential_unavailable naming the secret when it is missing. What was sent is remembered
// (ex.scrub) so it can be scrubbed from every response (credential-scrub.ts).
import type { HttpTargetSpec } from '../../../common/policy/types';
import { SecretError, type SecretStore } from '../../secrets';
import { HttpError } from '../errors';
import type { RouteExchange } from './exchange';
import type { Stage } from './stage';

export const injectCredentialStage: Stage<RouteExchange> = {
  name: 'inject-credential',
  run(ex) {
    const plan = ex.plan!;
    ex.scrub = plan.scrubberFor(injectCredential(ex.services.options.secrets, plan.spec, ex.upstreamHeaders, ex.upstreamUrl!));
  },
};

/**
 * Injects the target's credential into headers or the URL; throws 503 naming the secret when it is
 * missing. Returns the secret values it sent (what the response is scrubbed of).
 */
function injectCredential(secrets: SecretStore, target: HttpTargetSpec, headers: Record<string, string | string[]>, url: URL): string[] {
  const secret = target.credentialsSecret;
  if (!secret) return [];
  const auth = target.auth ?? {};
  try {
    if (auth.basic) {
      const user = secrets.read(secret, 'username');
      const pass = secrets.read(secret, 'password');
      const value = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
      headers[(auth.header ?? 'authorization').toLowerCase()] = value;
      return [pass, `${user}:${pass}`, value];
    }
    const token = secrets.read(secret, 'token');
    if (/[\r\n\0]/.test(token)) throw new SecretError(`credential "token" of secret "${secret}" contains a line break`);
    if (auth.queryParam) {
      url.searchParams.delete(auth.queryParam);
      url.searchParams.append(auth.queryParam, token);
      return [token];
    }
    const header = (auth.header ?? 'Authorization').toLowerCase();
    const prefix = auth.valuePrefix ?? (header === 'authorization' ? 'Bearer ' : '');
    headers[header] = prefix + token;
    return prefix === '' ? [token] : [token, prefix + token];
  } catch (err) {
    if (err instanceof SecretError) {
      throw new HttpError(
        503,
        'credential_unavailable',
        `the credential for this route (secret "${secret}") is unavailable: ${err.message}`,
        { secret },
      );
    }
    throw err;
  }
}
