// Result masking: what the server sends back passes through the policy's masking before the agent
// sees it: DataRow values by the result's row plan, COPY TO data (its columns described on the
// control connection first), and the text of notices, notifications and parameter reports.
import type { SqlStatementInfo } from '../../../common/policy/types';
import { decodeCopyResponse, decodeParameterStatus, encodeCopyData, encodeParameterStatus } from '../protocol/backend';
import type { Frame } from '../protocol/frame-reader';
import { ProtocolError } from '../protocol/errors';
import { Expect, type PendingResponse } from '../response-queue';
import {
  ActionKind,
  detectAll,
  ignoringSchemas,
  maskDataRow,
  missingTables,
  planRow,
  touchesMaskedColumns,
  type RowPlan,
  type TargetMasking,
} from '../row-masking';
import { copyPlan, maskCopyRow, type CopyPlan } from '../copy-masking';
import { maskNoticeMessage, maskNotification, maskParameterValue } from '../notice-masking';
import { readsProtectedOf, UNKNOWN_SHAPE } from './result-shapes';
import { tally } from './session-audit';
import type { PgSession } from '../session';

export class ResultMasking {
  /** A CopyOutResponse whose COPY has been described: processed again with this plan. */
  private copyReady?: { frame: Frame; plan: CopyPlan };

  constructor(private readonly s: PgSession) {}

  onDataRow(f: Frame): void {
    const s = this.s;
    const head = s.expectHead(Expect.Execute, Expect.Query);
    head.rows++;
    let plan = head.plan ?? s.shapes.planFor(head);
    if (!plan.active) return s.pass(f);
    const masking = s.rt.masking();
    if (!masking) return s.pass(f);
    if (plan === UNKNOWN_SHAPE) plan = head.plan = this.unknownShapePlan(f, masking);
    const r = maskDataRow(f, plan, masking);
    head.masked += r.count;
    if (r.count > 0) tally(head, r.by);
    if (r.frame) s.clientOut.push(r.frame);
    else s.pass(f);
  }

  /**
   * Rows whose description we never saw (fail closed): with column rules every value is replaced by
   * NULL, the one value valid for any type; with detectors only, every value is scanned.
   */
  private unknownShapePlan(f: Frame, masking: TargetMasking): RowPlan {
    if (f.end - f.body < 2) throw new ProtocolError('DataRow is too short');
    const n = f.buf.readInt16BE(f.body);
    const action =
      masking.columnRules.length > 0
        ? { kind: ActionKind.Whole, strategy: 'redact' as const, nullify: true, skip: 0 }
        : { kind: ActionKind.Detect, skip: 0 };
    return { active: true, actions: Array.from({ length: n }, () => action) };
  }

  onCopyOut(f: Frame): void {
    const head = this.s.expectHead(Expect.Execute, Expect.Query);
    const masking = this.s.masking();
    const response = decodeCopyResponse(f);
    if (!masking) {
      head.copyOut = true;
      return this.s.pass(f);
    }
    const columns = masking.columnRules.length > 0;
    let plan: CopyPlan | undefined;
    if (columns) {
      // Described whatever the statement names: a view (or a view over a view) carries masked columns
      // under its own name, and only the described columns tell.
      const ready = this.copyReady;
      if (ready?.frame !== f) return this.describeCopy(f, head, response.columnFormats.length, masking);
      this.copyReady = undefined;
      plan = ready.plan;
    }
    if (response.format === 1 && (plan?.plan.active === true || masking.detectors.length > 0)) {
      // The guard refuses a binary COPY that names masked columns before it runs; this is the backstop.
      // The COPY is already running, and anything but ending the session would leave agent and server out of step.
      return this.s.fatal(
        '42501',
        'COPY ... TO in binary format cannot be masked by the sidecar; use text or CSV format, or SELECT',
        'guard',
      );
    }
    if (plan?.plan.active === true) head.copyPlan = plan;
    if (columns) head.copies = (head.copies ?? 0) + 1;
    head.copyOut = true;
    this.s.pass(f);
  }

  /** The COPY TO statement of `head` that this CopyOutResponse starts (a Query may run several). */
  private copyStatement(head: PendingResponse): SqlStatementInfo | undefined {
    const copies = head.op?.statements.filter((s) => s.kind === 'COPY' && s.copyOut !== undefined) ?? [];
    return copies[head.copies ?? 0];
  }

  /**
   * Pauses the server stream while the COPY's query is described on the control connection, then
   * processes the CopyOutResponse again with a plan. When the columns cannot be learnt, every one is
   * replaced by the NULL marker (fail closed).
   */
  private describeCopy(f: Frame, head: PendingResponse, width: number, masking: TargetMasking): void {
    const stmt = this.copyStatement(head);
    const info = stmt?.copyOut ?? { select: '', format: 'text' as const };
    const readsProtected = head.op ? readsProtectedOf(masking, head.op) : true;
    const plan = async (): Promise<RowPlan> => {
      if (!stmt) throw new Error('the COPY statement was not classified');
      let fields = await this.s.rt.catalog.describe(info.select);
      if (fields.length !== width && info.wholeTable && fields.length > 0 && fields[0].tableOid !== 0) {
        const generated = await this.s.rt.catalog.generatedColumns(fields[0].tableOid);
        fields = fields.filter((x) => !generated.has(x.columnAttr));
      }
      if (fields.length !== width) throw new Error(`the COPY writes ${width} columns, its query describes ${fields.length}`);
      const missing = missingTables(fields, masking, this.s.rt.catalog);
      if (missing.length > 0) await this.s.rt.catalog.load(missing);
      return planRow({ fields, formats: [0], readsProtected }, ignoringSchemas(masking), this.s.rt.catalog);
    };
    const nullAll = (err: Error): RowPlan => {
      if (this.s.phase === 'ready') {
        // The server's message may quote the agent's own constants: the detectors run over it as over statement text.
        const message = this.s.audit.maskText(
          `describing a COPY's columns failed (${err.message}): every column it writes is replaced by NULL`,
        );
        this.s.audit.session('catalog-error', message);
      }
      const all = { kind: ActionKind.Whole, strategy: 'redact' as const, nullify: true, skip: 0 };
      return { active: true, actions: Array.from({ length: width }, () => all) };
    };
    const planned = plan()
      .catch(nullAll)
      .then((rowPlan) => {
        this.copyReady = { frame: f, plan: copyPlan(info, rowPlan) };
      });
    this.s.retryServerFrameAfter(f, planned);
  }

  onCopyData(f: Frame): void {
    const head = this.s.queue.peek();
    const masking = this.s.rt.masking();
    if (!head?.copyOut || !masking || (masking.detectors.length === 0 && !head.copyPlan)) return this.s.pass(f);
    let data = f.buf.subarray(f.body, f.end);
    let count = 0;
    const by: Record<string, number> = {};
    if (head.copyPlan) {
      const r = maskCopyRow(data, head.copyPlan, masking);
      if (r) {
        data = r.data;
        count += r.count;
        by.column = r.count;
      }
    }
    const d = masking.detectors.length > 0 ? detectAll(data, masking, by) : undefined;
    if (d) {
      data = d.buf;
      count += d.count;
    }
    if (count === 0) return this.s.pass(f);
    head.masked += count;
    tally(head, by);
    this.s.clientOut.push(encodeCopyData(data));
  }

  /** Whether the statement a server message belongs to reads a protected column: its values are redacted whole. */
  private strictFor(head: PendingResponse | undefined, masking: TargetMasking): boolean {
    return head?.op !== undefined && readsProtectedOf(masking, head.op);
  }

  /**
   * Errors and notices are redacted also when the statement only names a table with masked columns:
   * the server quotes rows it rejects (`Failing row contains (...)`, `Key (...)=(...) is duplicated`)
   * whatever columns the statement names.
   */
  strictErrorsFor(head: PendingResponse | undefined, masking: TargetMasking): boolean {
    if (head?.op === undefined) return false;
    return readsProtectedOf(masking, head.op) || head.op.statements.some((s) => touchesMaskedColumns(masking, s));
  }

  onParameterStatus(f: Frame): void {
    const p = decodeParameterStatus(f);
    const unsafe = this.s.login.checkParameter(p.key, p.value);
    if (unsafe) return this.s.fatal('42501', unsafe, 'guard');
    const masking = this.s.masking();
    if (!masking) return this.s.pass(f);
    const head = this.s.queue.peek();
    const r = maskParameterValue(p.value, masking, this.strictFor(head, masking));
    this.pushMasked(f, head, { ...r, frame: r.count > 0 ? encodeParameterStatus(p.key, r.value) : undefined });
  }

  onNotice(f: Frame): void {
    const masking = this.s.masking();
    if (!masking) return this.s.pass(f);
    const head = this.s.queue.peek();
    this.pushMasked(f, head, maskNoticeMessage(f.code, f.buf, f.body, f.end, masking, this.strictErrorsFor(head, masking), head?.text));
  }

  onNotification(f: Frame): void {
    const masking = this.s.masking();
    if (!masking) return this.s.pass(f);
    const head = this.s.queue.peek();
    this.pushMasked(f, head, maskNotification(f.buf, f.body, f.end, masking, this.strictFor(head, masking)));
  }

  private pushMasked(f: Frame, head: PendingResponse | undefined, r: { frame?: Buffer; count: number; by?: Record<string, number> }): void {
    if (!r.frame) return this.s.pass(f);
    if (head) {
      head.masked += r.count;
      tally(head, r.by);
    }
    this.s.clientOut.push(r.frame);
  }
}
