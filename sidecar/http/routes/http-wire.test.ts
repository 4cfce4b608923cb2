// The egress port's named-route path on the wire: raw TCP requests, as a hostile or sloppy agent
// could write them. Request-smuggling shapes are refused (400, or the connection closed) and
// never reach the upstream; HTTP/1.1 keep-alive with pipelining, `Expect: 100-continue`, and an
// oversized header block.
import * as net from 'node:net';
import { startSidecarFixture, type SidecarFixture } from '../../../test/support/sidecar/sidecar-fixture';

let fx: SidecarFixture;

beforeAll(async () => {
  fx = await startSidecarFixture({
    secrets: { svc: { token: 'svc-real-token-0123456789' } },
    policy: (port) => `apiVersion: agentwarden.io/v1alpha1
kind: AccessPolicy
metadata: {name: http-wire}
spec:
  defaultAction: allow
  targets:
    - name: svc
      http:
        baseUrl: http://127.0.0.1:${port}
        credentialsSecret: svc
        timeout: 3s
  rules:
    - name: no-files
      action: deny
      match: {target: svc, http: {paths: ["/echo/files/**"]}}
`,
  });
});

afterAll(async () => {
  await fx?.close();
});

interface Exchange {
  /** Everything the sidecar wrote back. */
  raw: string;
  /** The sidecar closed the connection. */
  closed: boolean;
}

/** Writes `parts` (strings written `gapMs` apart) on one connection; reads until closed or `idleMs` of silence. */
function exchange(parts: string[], opts: { idleMs?: number; gapMs?: number } = {}): Promise<Exchange> {
  const idleMs = opts.idleMs ?? 400;
  return new Promise((resolve, reject) => {
    const sock = net.connect(fx.sidecar.egressPort, '127.0.0.1');
    let raw = '';
    let idle: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        sock.destroy();
        resolve({ raw, closed: false });
      }, idleMs);
    };
    sock.on('data', (d) => {
      raw += d.toString('latin1');
      arm();
    });
    sock.on('close', () => {
      clearTimeout(idle);
      resolve({ raw, closed: true });
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') return; // 'close' follows
      reject(e);
    });
    const writeParts = async (): Promise<void> => {
      for (const [i, p] of parts.entries()) {
        if (i > 0 && opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        if (!sock.destroyed) sock.write(p);
      }
    };
    sock.on('connect', () => {
      arm();
      writeParts().catch(reject);
    });
  });
}

interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits a byte stream into HTTP/1.1 responses (Content-Length and chunked bodies; 1xx have none). */
function parseResponses(raw: string): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const [statusLine, ...lines] = raw.slice(at, end).split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    at = end + 4;
    let body = '';
    if (status >= 200 && headers['content-length'] !== undefined) {
      body = raw.slice(at, at + Number(headers['content-length']));
      at += Number(headers['content-length']);
    } else if (status >= 200 && /chunked/i.test(headers['transfer-encoding'] ?? '')) {
      for (;;) {
        const nl = raw.indexOf('\r\n', at);
        const size = parseInt(raw.slice(at, nl), 16);
        at = nl + 2;
        if (size === 0) {
          at = raw.indexOf('\r\n', at) + 2;
          break;
        }
        body += raw.slice(at, at + size);
        at += size + 2;
      }
    } else if (status >= 200 && headers['connection'] === 'close') {
      body = raw.slice(at);
      at = raw.length;
    }
    out.push({ status, headers, body });
  }
  return out;
}

/** A refused request: 400 (or nothing at all and a closed connection), and the upstream untouched. */
async function expectRefused(request: string): Promise<ParsedResponse | undefined> {
  const before = fx.upstream.arrivals;
  const ex = await exchange([request]);
  const responses = parseResponses(ex.raw);
  if (process.env.WIRE_DEBUG)
    process.stdout.write(
      `${JSON.stringify(request.slice(0, 90))} -> ${responses.map((r) => r.status).join(',') || 'no response'}${ex.closed ? ', closed' : ''}\n`,
    );
  if (responses.length === 0) expect(ex.closed).toBe(true);
  else {
    expect(responses).toHaveLength(1); // nothing answered for a smuggled second request
    expect(responses[0].status).toBe(400);
  }
  // Give a forwarded (smuggled) request time to land before checking it did not.
  await new Promise((r) => setTimeout(r, 100));
  expect(fx.upstream.arrivals).toBe(before);
  return responses[0];
}

describe('request smuggling shapes on the route path are refused before the upstream', () => {
  const smuggled = 'GET /svc/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n';

  test('both Content-Length and Transfer-Encoding (CL.TE / TE.CL)', async () => {
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    );
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${smuggled}`,
    );
  });

  test('duplicate, conflicting Content-Length', async () => {
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nContent-Length: 45\r\n\r\nbody${smuggled}`,
    );
    await expectRefused(`POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 4, 45\r\n\r\nbody${smuggled}`);
  });

  test('obs-fold (a header line continued on the next line)', async () => {
    await expectRefused(`GET /svc/echo HTTP/1.1\r\nHost: x\r\nX-Folded: first\r\n  second\r\n\r\n`);
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`,
    );
  });

  test('invalid chunk size (JSON body, which the route reads before deciding)', async () => {
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n`,
    );
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n`,
    );
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n`,
    );
  });

  test('invalid chunk size after a valid chunk of a streamed (non-JSON) body: 400, and the upstream request never completes', async () => {
    // Bodies that are not JSON stream to the upstream as they arrive, so the head and the first
    // chunk are already on their way when the bad chunk size shows up; the upstream request is
    // aborted (never completed), and nothing after the bad chunk is forwarded.
    const before = fx.upstream.requests.length;
    const ex = await exchange(
      [
        `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`,
        `ZZ\r\nab\r\n0\r\n\r\nGET /svc/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n`,
      ],
      { gapMs: 150 },
    );
    expect(parseResponses(ex.raw).map((r) => r.status)).toEqual([400]);
    expect(ex.closed).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(fx.upstream.requests.length).toBe(before);
  });

  test('Transfer-Encoding: gzip without chunked', async () => {
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n${smuggled}`,
    );
    await expectRefused(
      `POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n${smuggled}`,
    );
  });

  test('the refusal is the JSON bad_request body and closes the connection', async () => {
    const r = await expectRefused(`POST /svc/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 45\r\n\r\nbody`);
    expect(r?.headers.connection).toBe('close');
    expect(JSON.parse(r!.body)).toMatchObject({ error: { type: 'bad_request' } });
  });
});

describe('HTTP/1.1 from the agent', () => {
  test('keep-alive: two requests pipelined on one connection are both answered, in order, one upstream request each', async () => {
    const before = fx.upstream.requests.length;
    const ex = await exchange([
      'POST /svc/echo/first HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello' +
        'GET /svc/echo/second HTTP/1.1\r\nHost: x\r\n\r\n',
    ]);
    expect(ex.closed).toBe(false); // still open: keep-alive
    const rs = parseResponses(ex.raw);
    expect(rs.map((r) => r.status)).toEqual([200, 200]);
    expect(JSON.parse(rs[0].body)).toMatchObject({ method: 'POST', url: '/echo/first', bodyBytes: 5 });
    expect(JSON.parse(rs[1].body)).toMatchObject({ method: 'GET', url: '/echo/second', bodyBytes: 0 });
    expect(fx.upstream.requests.slice(before).map((r) => r.url)).toEqual(['/echo/first', '/echo/second']);
  });

  test('keep-alive: sequential requests reuse the agent connection', async () => {
    const ex = await exchange(
      [
        'GET /svc/echo/1 HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /svc/echo/2 HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /svc/echo/3 HTTP/1.1\r\nHost: x\r\n\r\n',
      ],
      { gapMs: 50 },
    );
    expect(parseResponses(ex.raw).map((r) => [r.status, JSON.parse(r.body).url])).toEqual([
      [200, '/echo/1'],
      [200, '/echo/2'],
      [200, '/echo/3'],
    ]);
  });

  test('Expect: 100-continue: 100 Continue, then the body is forwarded (JSON and streamed bodies)', async () => {
    for (const type of ['application/json', 'application/octet-stream']) {
      const body = '{"model":"m","input":"x"}';
      const ex = await exchange(
        [
          `POST /svc/echo/continue HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
          body,
        ],
        { gapMs: 150, idleMs: 2000 }, // the body only after the interim response would have come; generous idle for loaded machines
      );
      expect(ex.raw.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
      const rs = parseResponses(ex.raw);
      expect(rs.map((r) => r.status)).toEqual([100, 200]);
      expect(JSON.parse(rs[1].body)).toMatchObject({ url: '/echo/continue', bodyBytes: body.length });
      expect(fx.upstream.requests.at(-1)!.headers.expect).toBeUndefined();
    }
  });

  test('Expect: 100-continue on a denied request: 403 without 100 Continue, the body never sent', async () => {
    const before = fx.upstream.arrivals;
    const ex = await exchange([
      `POST /svc/echo/files/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n`,
    ]);
    const rs = parseResponses(ex.raw);
    expect(rs.map((r) => r.status)).toEqual([403]);
    expect(JSON.parse(rs[0].body)).toMatchObject({ error: { type: 'policy_denied', rule: 'no-files' } });
    expect(fx.upstream.arrivals).toBe(before);
  });

  test('a huge header block is refused (over the 16 KiB default) and never forwarded', async () => {
    const before = fx.upstream.arrivals;
    const ex = await exchange([`GET /svc/echo HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`]);
    const rs = parseResponses(ex.raw);
    expect(rs).toHaveLength(1);
    expect(rs[0].status).toBe(431); // RFC 6585
    expect(fx.upstream.arrivals).toBe(before);
  });
});
