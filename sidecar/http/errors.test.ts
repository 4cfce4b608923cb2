import { PassThrough } from 'node:stream';
import { denial, errorBody, HttpError, httpErrorBody, writeRawError } from './errors';

describe('the one error-response module', () => {
  it('an HttpError body: the error type, message and extra fields; a denial names its rule (defaultAction without one)', () => {
    expect(JSON.parse(httpErrorBody(new HttpError(503, 'credential_unavailable', 'gone', { secret: 's' })))).toEqual({
      error: { type: 'credential_unavailable', message: 'gone', secret: 's' },
    });
    expect(JSON.parse(httpErrorBody(denial({ action: 'deny', rule: 'no-files', reason: 'files are off' })))).toEqual({
      error: { type: 'policy_denied', rule: 'no-files', message: 'files are off' },
    });
    expect(JSON.parse(httpErrorBody(denial({ action: 'deny', reason: 'default' })))).toEqual({
      error: { type: 'policy_denied', rule: 'defaultAction', message: 'default' },
    });
  });

  it('a raw-socket answer (CONNECT refusals, malformed requests): status line, JSON, length, extra headers, connection closed', () => {
    const socket = new PassThrough();
    const body = errorBody('unauthenticated', 'no token');
    writeRawError(socket, 407, body, { 'proxy-authenticate': 'Bearer' });
    const text = String(socket.read());
    expect(text).toBe(
      `HTTP/1.1 407 Proxy Authentication Required\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nproxy-authenticate: Bearer\r\nconnection: close\r\n\r\n${body}`,
    );
    expect(socket.writableEnded).toBe(true);
  });
});
