// A minimal query runner over an upstream connection the sidecar owns (catalog lookups, describing
// a COPY's query). Values come back in text format; one request at a time.
import { BE } from './protocol/codes';
import { decodeDataRow, decodeNoticeFields, decodeRowDescription, type FieldDescription } from './protocol/backend';
import { encodeDescribe, encodeParse, encodeQuery, encodeSync, encodeTerminate } from './protocol/frontend';
import type { UpstreamConnection } from './upstream';

/** A catalog query answers in milliseconds; one that hangs must not hold result rows back forever. */
const DEFAULT_QUERY_TIMEOUT_MS = 5_000;

export class ControlConnection {
  private busy: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly conn: UpstreamConnection,
    private readonly timeoutMs = DEFAULT_QUERY_TIMEOUT_MS,
  ) {
    conn.socket.on('error', () => this.close());
    conn.socket.on('close', () => (this.closed = true));
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Runs `sql` (simple protocol) and returns rows of text values. */
  query(sql: string): Promise<Array<Array<string | null>>> {
    const run = this.busy.then(() => this.run(encodeQuery(sql)).then((r) => r.rows));
    this.busy = run.catch(() => undefined);
    return run;
  }

  /** Parses and describes `sql` (unnamed statement, nothing executed): its result columns, empty for none. */
  describe(sql: string): Promise<FieldDescription[]> {
    const run = this.busy.then(() =>
      this.run(Buffer.concat([encodeParse('', sql), encodeDescribe('S', ''), encodeSync()])).then((r) => r.fields),
    );
    this.busy = run.catch(() => undefined);
    return run;
  }

  private run(request: Buffer): Promise<{ rows: Array<Array<string | null>>; fields: FieldDescription[] }> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('control connection is closed'));
      const { socket, reader } = this.conn;
      const rows: Array<Array<string | null>> = [];
      let fields: FieldDescription[] = [];
      let error: Error | undefined;
      // On timeout the connection is closed: a late answer must not be read as the next query's.
      const timer = setTimeout(() => {
        finish(new Error(`control query timed out after ${this.timeoutMs} ms`));
        this.close();
      }, this.timeoutMs);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
        socket.pause();
        if (err) reject(err);
        else resolve({ rows, fields });
      };
      const drain = (): void => {
        for (let f = reader.next(); f; f = reader.next()) {
          if (f.code === BE.RowDescription) fields = decodeRowDescription(f);
          else if (f.code === BE.DataRow) rows.push(decodeDataRow(f).map((v) => (v === null ? null : v.toString('utf8'))));
          else if (f.code === BE.ErrorResponse) error = new Error(decodeNoticeFields(f).M ?? 'query failed');
          else if (f.code === BE.ReadyForQuery) return finish(error);
        }
      };
      const onData = (chunk: Buffer): void => {
        reader.push(chunk);
        try {
          drain();
        } catch (e) {
          this.close();
          finish(e as Error);
        }
      };
      const onClose = (): void => finish(new Error('control connection closed'));
      socket.on('data', onData);
      socket.once('close', onClose);
      socket.resume();
      socket.write(request);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.socket.end(encodeTerminate());
    this.conn.socket.destroy();
  }
}
