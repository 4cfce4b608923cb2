// A CONNECT tunnel, once allowed: a raw TCP connection to host:port (its name resolved through the
// address guard), `200 Connection Established`, then bytes both ways with backpressure and
// half-closes; counted for the audit record, which goes out once both sides closed. A connection
// that fails is answered on the raw socket (errors.ts writeRawError).
import * as dns from 'node:dns';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { CompiledPolicy } from '../../../common/policy/compile';
import type { HttpOperationWithPort } from '../../../common/policy/engine';
import type { Identity } from '../../../common/policy/types';
import { writeRawError } from '../errors';
import { guardedLookup, type AddressDeniedError } from './address-guard';
import type { ForwardProxyContext } from './exchange';
import type { ForwardAuditEvent } from '../../audit/events';
import { ConnectTimeoutError, upstreamFailure } from './upstream-failure';

export interface Tunnel {
  policy: CompiledPolicy;
  op: HttpOperationWithPort;
  identity: Identity;
  target: { host: string; port: number };
  client: Duplex;
  /** Bytes the agent sent after its CONNECT request. */
  head: Buffer;
  ev: ForwardAuditEvent;
  emit: () => void;
  /** The listener that aborts a hold when the agent closes early; removed once established. */
  onEarlyClose: () => void;
}

export function openTunnel(ctx: ForwardProxyContext, t: Tunnel): void {
  const { target, client, head, ev, emit } = t;
  const upstream = net.connect({
    host: target.host,
    port: target.port,
    lookup: guardedLookup(ctx.lookup ?? dns.lookup, t.policy, t.op, t.identity),
  });
  let established = false;
  const timer = setTimeout(() => upstream.destroy(new ConnectTimeoutError('connect timeout')), ctx.connectTimeoutMs);
  const abandon = (): void => {
    if (!established) upstream.destroy();
  };
  client.once('close', abandon);

  upstream.once('error', (err: Error & { code?: string }) => {
    clearTimeout(timer);
    if (established) {
      ev.error ??= `upstream: ${err.message}`;
      client.destroy();
      return;
    }
    const f = upstreamFailure(err, target.host, target.port);
    ev.outcome = f.status === 403 ? 'denied' : 'error';
    if (f.status === 403) {
      ev.decision = 'deny';
      ev.rule = (err as AddressDeniedError).decision.rule;
      ev.reason = f.message;
    } else ev.error = f.message;
    ev.status = client.destroyed ? 0 : f.status;
    writeRawError(client, f.status, f.body);
    emit();
  });

  upstream.once('connect', () => {
    clearTimeout(timer);
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    established = true;
    client.removeListener('close', t.onEarlyClose);
    ev.outcome = 'forwarded';
    ev.status = 200;
    ev.remoteAddress = upstream.remoteAddress;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) {
      ev.bytesUp += head.length;
      upstream.write(head);
    }
    client.on('data', (c: Buffer) => (ev.bytesUp += c.length));
    upstream.on('data', (c: Buffer) => (ev.bytesDown += c.length));
    // pipe() gives backpressure both ways and forwards half-closes (FIN) as end().
    client.pipe(upstream);
    upstream.pipe(client);
    let open = 2;
    const closed = (): void => {
      if (--open === 0) emit();
    };
    client.once('close', () => {
      upstream.destroy();
      closed();
    });
    upstream.once('close', () => {
      // Let what is buffered for the agent drain, then make sure the socket goes away. unpipe()
      // paused the client side: resume it (discarding) so the agent's FIN is read and it closes.
      if (!client.destroyed) {
        client.end();
        client.resume();
        setTimeout(() => client.destroy(), 5000).unref();
      }
      closed();
    });
  });
}
