// The upstream login against hostile or broken servers: a stand-in server speaking just enough of
// the protocol to misbehave in one specific way each time.
import * as net from 'node:net';
import { authRequest, msg } from '../../test/support/sidecar/pg-bytes';
import { connectUpstream, sendCancel, type UpstreamOptions } from './upstream';

async function fakeServer(onData: (sock: net.Socket, n: number, data: Buffer) => void): Promise<{ port: number; close(): void }> {
  const srv = net.createServer((sock) => {
    let n = 0;
    sock.on('data', (d) => onData(sock, n++, d));
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}

function opts(port: number): UpstreamOptions {
  return {
    host: '127.0.0.1',
    port,
    database: 'db',
    tls: 'disable',
    credentials: { username: 'u', password: 'the-real-password' },
    params: {},
    timeoutMs: 2000,
    maxMessageBytes: 1 << 20,
  };
}

test('a server that says OK before proving itself in SCRAM is refused', async () => {
  const srv = await fakeServer((sock, n) => {
    if (n === 0) sock.write(authRequest(10, Buffer.from('SCRAM-SHA-256\0\0')));
    else sock.write(Buffer.concat([authRequest(0), msg('Z', Buffer.from('I'))]));
  });
  try {
    await expect(connectUpstream(opts(srv.port))).rejects.toThrow(/before proving its identity/);
  } finally {
    srv.close();
  }
});

test('an absurd SCRAM iteration count is refused instead of stalling the event loop', async () => {
  const srv = await fakeServer((sock, n, data) => {
    if (n === 0) return void sock.write(authRequest(10, Buffer.from('SCRAM-SHA-256\0\0')));
    const nonce = /r=([^,\0]+)/.exec(data.toString('latin1'))![1];
    sock.write(authRequest(11, Buffer.from(`r=${nonce}xyz,s=${Buffer.from('salt').toString('base64')},i=2147483647`)));
  });
  try {
    const started = Date.now();
    await expect(connectUpstream(opts(srv.port))).rejects.toThrow(/iteration count/);
    expect(Date.now() - started).toBeLessThan(1000);
  } finally {
    srv.close();
  }
});

test('login errors name the problem but never the password', async () => {
  const srv = await fakeServer((sock) => {
    const fields = Buffer.from('SFATAL\0C28P01\0Mpassword authentication failed for user "u"\0\0');
    sock.write(msg('E', fields));
  });
  try {
    const err = await connectUpstream(opts(srv.port)).catch((e: Error) => e);
    expect(String(err)).toMatch(/password authentication failed/);
    expect(String(err)).not.toContain('the-real-password');
  } finally {
    srv.close();
  }
});

test('a server that never answers times out with a clear error', async () => {
  const srv = await fakeServer(() => undefined);
  try {
    await expect(connectUpstream({ ...opts(srv.port), timeoutMs: 300 })).rejects.toThrow(/timed out/);
  } finally {
    srv.close();
  }
});

test('a TLS handshake that never completes times out', async () => {
  const srv = await fakeServer((sock, n) => {
    if (n === 0) sock.write('S'); // agrees to TLS, then says nothing more
  });
  try {
    await expect(connectUpstream({ ...opts(srv.port), tls: 'require', timeoutMs: 300 })).rejects.toThrow(/timed out .*TLS handshake/);
  } finally {
    srv.close();
  }
});

test('sendCancel gives up after its timeout on a server that never closes, and survives a reset', async () => {
  const silent = await fakeServer(() => undefined);
  try {
    const started = Date.now();
    await sendCancel({ ...opts(silent.port), timeoutMs: 200 }, 1, Buffer.alloc(4));
    expect(Date.now() - started).toBeLessThan(1500);
  } finally {
    silent.close();
  }
  const reset = await fakeServer((sock) => sock.resetAndDestroy());
  try {
    await sendCancel({ ...opts(reset.port), timeoutMs: 1000 }, 1, Buffer.alloc(4));
  } finally {
    reset.close();
  }
});
