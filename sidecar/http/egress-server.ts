// The HTTP egress port (127.0.0.1:15001): named routes (`/<target>/...`) and, for everything
// else the agent reaches through HTTP_PROXY/HTTPS_PROXY, the forward proxy (absolute-form requests
// and CONNECT). One server, dispatching by request shape.
import * as http from 'node:http';
import { handleAbsoluteForm, handleConnect, isAbsoluteForm, type ForwardProxyContext } from './forward/forward-proxy';
import type { RouteHandler } from './routes/route-proxy';
import { errorBody, writeRawError } from './errors';

export interface EgressServerOptions {
  routes: RouteHandler;
  forward: ForwardProxyContext;
  /** Close idle agent keep-alive connections after this long. */
  keepAliveTimeoutMs?: number;
}

export function createEgressServer(o: EgressServerOptions): http.Server {
  const server = http.createServer({ keepAliveTimeout: o.keepAliveTimeoutMs ?? 65_000, requestTimeout: 0 });
  server.on('request', (req, res) => {
    if (isAbsoluteForm(req)) handleAbsoluteForm(req, res, o.forward);
    else o.routes(req, res);
  });
  server.on('checkContinue', (req, res) => {
    // 100 Continue only once the request is allowed (a denied body is never sent).
    if (isAbsoluteForm(req)) {
      handleAbsoluteForm(req, res, o.forward, { expectContinue: true });
    } else {
      o.routes.checkContinue(req, res);
    }
  });
  server.on('connect', (req, socket, head) => handleConnect(req, socket, head, o.forward));
  // A malformed request (smuggling shapes node's parser rejects) gets a 400 instead of a reset.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return void socket.destroy(err);
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const body = tooLarge
      ? errorBody('headers_too_large', 'request headers exceed the size limit')
      : errorBody('bad_request', 'malformed HTTP request (conflicting lengths, folded headers or bad chunking are refused)');
    writeRawError(socket, tooLarge ? 431 : 400, body);
  });
  return server;
}
