// How a failed upstream connection of the forward proxy is answered (tunnels and absolute-form).
import { errorBody, policyDeniedBody } from '../errors';
import { AddressDeniedError } from './address-guard';

export class ConnectTimeoutError extends Error {
  code = 'ETIMEDOUT_CONNECT';
}

export class ResponseTimeoutError extends Error {
  code = 'ETIMEDOUT_RESPONSE';
}

/** Maps a connection failure to the agent's answer. */
export function upstreamFailure(
  err: Error & { code?: string },
  host: string,
  port: number,
): { status: number; body: string; message: string } {
  if (err instanceof AddressDeniedError) {
    const message = `${host} resolves to ${err.address}: ${err.decision.reason}`;
    return { status: 403, body: policyDeniedBody(err.decision, message), message };
  }
  if (err instanceof ResponseTimeoutError) {
    const message = `${host}:${port} did not answer in time`;
    return { status: 504, body: errorBody('upstream_timeout', message, { host, port }), message };
  }
  if (err instanceof ConnectTimeoutError || err.code === 'ETIMEDOUT') {
    const message = `connecting to ${host}:${port} timed out`;
    return { status: 504, body: errorBody('upstream_timeout', message, { host, port }), message };
  }
  const message = `cannot reach ${host}:${port} (${err.code ?? err.message})`;
  return { status: 502, body: errorBody('upstream_unreachable', message, { host, port }), message };
}
