// A real OTLP/HTTP collector stand-in for tests: node:http on 127.0.0.1 (port 0) accepting
// POST /v1/traces, /v1/logs and /v1/metrics as protobuf (decoded with the official
// opentelemetry-proto messages in ./otlp-proto) or OTLP/JSON, gzip or not, and answering as the
// OTLP/HTTP spec says (200 + an empty Export*ServiceResponse in the request's encoding).
// It can fail on purpose (setFailing) and go away entirely (down/up on the same port), so the
// audit pipeline's retry and spool paths meet a collector that behaves like the real one.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as zlib from 'node:zlib';
import {
  decodeExport,
  exportResponse,
  type DecodedExport,
  type FlatLog,
  type FlatMetric,
  type FlatSpan,
  type OtlpEncoding,
  type OtlpSignal,
} from './otlp-proto/decode';

export type { AttrValue, Attributes, FlatDataPoint, FlatLog, FlatMetric, FlatScope, FlatSpan } from './otlp-proto/decode';

export interface OtlpReceiverOptions {
  /** Accept only this encoding (others get 415); default any. */
  protocol?: 'any' | 'http/protobuf' | 'http/json';
}

export interface RawOtlpRequest {
  /** Request path, e.g. `/v1/traces`. */
  path: string;
  contentType: string;
  contentEncoding?: string;
  /** The body after gzip decoding: what secret scans search. */
  body: Buffer;
  /** The body as it came off the socket. */
  wire: Buffer;
  /** The HTTP status the receiver answered. */
  status: number;
}

export interface OtlpReceiver {
  /** Base URL, e.g. `http://127.0.0.1:PORT` (exporters append /v1/traces etc.). */
  readonly url: string;
  readonly port: number;
  /** Every request that reached the receiver, accepted or not (attempts during setFailing included). */
  readonly requests: number;
  spans(): FlatSpan[];
  logs(): FlatLog[];
  metrics(): FlatMetric[];
  /** Every request body received, in order, including rejected ones. */
  raw(): RawOtlpRequest[];
  /** Answer every request with this status (e.g. 503) until set back to null. */
  setFailing(status: number | null): void;
  /** Close the listening socket and every connection: the collector is unreachable. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  /** Resolves once predicate(receiver) is true; rejects after timeoutMs saying what was received. */
  waitFor(predicate: (r: OtlpReceiver) => boolean, timeoutMs?: number): Promise<void>;
  /** Forget everything received so far (counts included). */
  reset(): void;
  close(): Promise<void>;
}

const SIGNALS: Record<string, OtlpSignal> = { '/v1/traces': 'traces', '/v1/logs': 'logs', '/v1/metrics': 'metrics' };

/** The encoding a Content-Type names, or undefined when it is neither OTLP encoding. */
function encodingOf(contentType: string): OtlpEncoding | undefined {
  const mime = contentType.split(';')[0].trim().toLowerCase();
  if (mime === 'application/x-protobuf' || mime === 'application/protobuf') return 'protobuf';
  if (mime === 'application/json') return 'json';
  return undefined;
}

function gunzipIfNeeded(wire: Buffer, contentEncoding: string | undefined): Buffer {
  const enc = (contentEncoding ?? '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') return wire;
  if (enc === 'gzip') return zlib.gunzipSync(wire);
  throw new Error(`unsupported Content-Encoding "${contentEncoding}"`);
}

function answer(res: http.ServerResponse, status: number, contentType: string, body: Buffer | string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export async function startOtlpReceiver(opts: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const protocol = opts.protocol ?? 'any';
  let spans: FlatSpan[] = [];
  let logs: FlatLog[] = [];
  let metrics: FlatMetric[] = [];
  let raw: RawOtlpRequest[] = [];
  let requests = 0;
  let failing: number | null = null;
  let listening = false;

  const handle = (req: http.IncomingMessage, res: http.ServerResponse, wire: Buffer): void => {
    requests++;
    const path = (req.url ?? '/').split('?')[0];
    const contentType = String(req.headers['content-type'] ?? '');
    const contentEncoding = req.headers['content-encoding'];
    const record: RawOtlpRequest = { path, contentType, contentEncoding, body: wire, wire, status: 0 };
    raw.push(record);
    const reply = (status: number, type: string, body: Buffer | string): void => {
      record.status = status;
      answer(res, status, type, body);
    };
    try {
      record.body = gunzipIfNeeded(wire, contentEncoding);
    } catch (err) {
      return reply(400, 'text/plain', `cannot decode body: ${(err as Error).message}`);
    }
    if (failing !== null) return reply(failing, 'text/plain', `collector failing on purpose (${failing})`);
    const signal = SIGNALS[path];
    if (!signal) return reply(404, 'text/plain', `no OTLP endpoint at ${path}`);
    if (req.method !== 'POST') return reply(405, 'text/plain', `${req.method} not allowed on ${path}`);
    const encoding = encodingOf(contentType);
    const wanted: OtlpEncoding | undefined = protocol === 'http/protobuf' ? 'protobuf' : protocol === 'http/json' ? 'json' : undefined;
    if (!encoding || (wanted && encoding !== wanted)) return reply(415, 'text/plain', `unsupported Content-Type "${contentType}"`);
    let decoded: DecodedExport;
    try {
      decoded = decodeExport(signal, encoding, record.body);
    } catch (err) {
      return reply(400, 'text/plain', `cannot decode ${signal}: ${(err as Error).message}`);
    }
    spans.push(...decoded.spans);
    logs.push(...decoded.logs);
    metrics.push(...decoded.metrics);
    reply(200, encoding === 'json' ? 'application/json' : 'application/x-protobuf', exportResponse(signal, encoding));
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        listening = true;
        resolve();
      });
    });
  const stop = async (): Promise<void> => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Keep-alive sockets would otherwise keep the "down" collector reachable.
    server.closeAllConnections();
    await closed;
  };

  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const receiver: OtlpReceiver = {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    spans: () => [...spans],
    logs: () => [...logs],
    metrics: () => [...metrics],
    raw: () => [...raw],
    setFailing: (status) => {
      failing = status;
    },
    down: stop,
    up: async () => {
      if (!listening) await listen(port);
    },
    waitFor: async (predicate, timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(receiver)) {
        if (Date.now() > deadline) {
          throw new Error(
            `OTLP receiver: condition not met within ${timeoutMs}ms (requests=${requests}, spans=${spans.length}, logs=${logs.length}, metrics=${metrics.length})`,
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    reset: () => {
      spans = [];
      logs = [];
      metrics = [];
      raw = [];
      requests = 0;
    },
    close: stop,
  };
  return receiver;
}
