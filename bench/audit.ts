// `node dist-dev/bench/audit.js`: the audit trail's cost per operation, stage by stage, in this process
// (no network): on the main thread, building a record, encoding it (binary.ts; JSON.stringify, the
// format before it, for comparison) and appending it to the spool (one write); in the export
// thread, decoding it and the OTLP protobuf serialization.
// Complements pg-bench's `sidecar-audit` target, which measures the whole path end to end.
// The sidecar runs with 1 MB semi-spaces (bench/support.ts shippedSidecarEnv): to measure the export
// thread's batch lines as it runs, `node --max-semi-space-size=1 dist-dev/bench/audit.js`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { silentLogger } from '../common/log';
import { Metrics } from '../common/metrics';
import type { AuditRecord } from '../common/audit/record';
import { sidecarResource } from '../sidecar/audit/otlp-settings';
import { postgresRecord } from '../sidecar/audit/records';
import { Spool } from '../sidecar/audit/spool';
import { decodeRecord, encodeRecord } from '../sidecar/audit/binary';
import { BatchEncoder, encodeLogs, encodeTraces } from '../sidecar/audit/otlp-encode';
import { toLogRecord, toSpans } from '../sidecar/audit/to-otlp';

const N = Number(process.env.BENCH_AUDIT_N ?? 50_000);

function time(label: string, n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  process.stdout.write(`  ${label.padEnd(52)} ${us.toFixed(2).padStart(8)} µs/op\n`);
  return us;
}

function main(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-audit-bench-'));
  const spool = Spool.open({ dir, maxBytes: 1024 * 1024 * 1024, whenFull: 'drop-oldest', log: silentLogger, metrics: new Metrics() });
  const resource = sidecarResource({});
  const identity = { subject: 'system:serviceaccount:agents:support-agent', groups: ['system:serviceaccounts'], source: 'pod' as const };
  const make = (i: number): AuditRecord =>
    postgresRecord(
      {
        session: 'b7d3c0de-1111-4222-8333-944455556666',
        seq: i,
        start: Date.now(),
        durationMs: 0.21,
        upstreamMs: 0.12,
        policy: 'agents/support-agent',
        target: 'crm',
        decision: 'allow',
        reason: 'no rule matched; default action allow',
        identity,
        masked: 0,
      },
      {
        namespace: 'crm',
        text: `SELECT abalance FROM pgbench_accounts WHERE aid = ${i}`,
        operations: ['SELECT'],
        protocol: 'simple',
        rows: 1,
      },
    );
  process.stdout.write(`Audit trail cost per operation (${N} operations, one process, no network)\n`);
  const build = time('build the record', N, make);
  const rec = make(1);
  const json = JSON.stringify(rec);
  time('JSON.stringify (the format before binary.ts)', N, () => JSON.stringify(rec));
  const encode = time('encodeRecord (binary), used', N, () => encodeRecord(rec));
  time('spool.append(JSON string) + stringify, before', N, () => spool.append(JSON.stringify(rec)));
  const append = time('spool.append(encodeRecord(r)) (one write), used', N, () => spool.append(encodeRecord(rec)));
  const bin = Buffer.from(encodeRecord(rec));
  process.stdout.write(`  ${'record size: JSON / binary'.padEnd(52)} ${Buffer.byteLength(json)} / ${bin.length} bytes\n`);
  time('export thread: JSON.parse (before)', N, () => JSON.parse(json));
  time('export thread: decodeRecord (binary), used', N, () => decodeRecord(bin));
  const objects = time('export thread: span + log objects (http/json only)', N, () => {
    toSpans(rec, resource);
    toLogRecord(rec, resource);
  });
  const batch = 512;
  const spans = Array.from({ length: batch }, () => toSpans(rec, resource)).flat();
  const logs = Array.from({ length: batch }, () => toLogRecord(rec, resource));
  const records = Array.from({ length: batch }, () => rec);
  const quiet = (label: string, fn: () => void): number => {
    const rounds = Math.max(5, Math.ceil(N / batch));
    for (let i = 0; i < 3; i++) fn();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) fn();
    const us = Number(process.hrtime.bigint() - t0) / 1000 / rounds / batch;
    process.stdout.write(`  ${label.padEnd(52)} ${us.toFixed(2).padStart(8)} µs/op\n`);
    return us;
  };
  const sdk = quiet('export thread: SDK OTLP protobuf serializer (span + log)', () => {
    ProtobufTraceSerializer.serializeRequest(spans);
    ProtobufLogsSerializer.serializeRequest(logs);
  });
  quiet('export thread: our OTLP encoder (span + log)', () => {
    encodeTraces(records, resource);
    encodeLogs(records, resource);
  });
  // A shipper batch (1,024 distinct records): decoded whole and then encoded (before), or each record
  // decoded and written to both requests in one pass (BatchEncoder, used). Run with the shipped
  // --max-semi-space-size=1 to see what keeping the decoded batch alive costs in collections.
  const bins = Array.from({ length: 1024 }, (_, i) => Buffer.from(encodeRecord(make(i))));
  const perBatch = (label: string, fn: () => void): number => {
    const rounds = Math.max(5, Math.ceil(N / bins.length));
    for (let i = 0; i < 3; i++) fn();
    const t0 = process.cpuUsage();
    for (let i = 0; i < rounds; i++) fn();
    const t = process.cpuUsage(t0);
    const us = (t.user + t.system) / rounds / bins.length;
    process.stdout.write(`  ${label.padEnd(52)} ${us.toFixed(2).padStart(8)} µs/op (CPU, GC threads included)\n`);
    return us;
  };
  perBatch('export thread: decode the batch, then encode (before)', () => {
    const rs = bins.map((b) => decodeRecord(b));
    encodeTraces(rs, resource);
    encodeLogs(rs, resource);
  });
  const enc = new BatchEncoder(resource);
  const onePass = perBatch('export thread: decode + BatchEncoder, one pass (used)', () => {
    enc.begin();
    for (const b of bins) enc.add(decodeRecord(b));
    enc.finish();
  });
  process.stdout.write(`  ${'(the SDK path also needs the span + log objects)'.padEnd(52)}   ${(sdk + objects).toFixed(2)} µs/op in all\n`);
  const hot = build + append;
  const ship = onePass;
  process.stdout.write(
    `\n  on the main thread (build + encode + write):         ${hot.toFixed(1)} µs  (encode alone ${encode.toFixed(1)})\n`,
  );
  process.stdout.write(`  in the export thread (decode + OTLP encode):         ${ship.toFixed(1)} µs  (one pass over a batch; CPU)\n`);
  void spool.close().then(() => fs.rmSync(dir, { recursive: true, force: true }));
}

main();
