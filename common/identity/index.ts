// Caller identity: verify short-lived JWTs (spec.identity) and find them in requests.
export { IdentityError } from './errors';
export type { IdentityErrorCode } from './errors';
export { ACCEPTED_ALGORITHMS, createTokenVerifier, resolveIdentitySpec } from './verifier';
export type { TokenVerifier, TokenVerifierOptions } from './verifier';
export { bearerFromHeaders, tokenFromPassword } from './extract';
export type { HeaderSource } from './extract';
export { CLUSTER_KEYS_FILE, ClusterKeysError, parseClusterKeys, renderClusterKeys } from './cluster-keys';
export type { ClusterKeys } from './cluster-keys';
