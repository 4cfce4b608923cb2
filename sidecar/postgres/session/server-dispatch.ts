// The server-frame dispatcher: every message from the database answers the oldest pending request
// (the response queue). Confirmations settle the session model; rows, COPY data and notices go
// through result masking; the answer to a denial's failing statement is replaced by the denial.
import type { Decision } from '../../../common/policy/types';
import { BE } from '../protocol/codes';
import { decodeCommandComplete, decodeNoticeFields, decodeReadyForQuery, encodeErrorResponse, type ErrorFields } from '../protocol/backend';
import type { Frame } from '../protocol/frame-reader';
import { Expect } from '../response-queue';
import { maskNoticeMessage } from '../notice-masking';
import { tally } from './session-audit';
import type { PgSession } from '../session';

const DDL = /^(CREATE|ALTER|DROP|TRUNCATE|COMMENT|GRANT|REVOKE)\b/;

export class ServerDispatch {
  constructor(private readonly s: PgSession) {}

  onFrame(f: Frame): void {
    const s = this.s;
    switch (f.code) {
      case BE.DataRow:
        return s.masker.onDataRow(f);
      case BE.ParseComplete:
        s.model.confirm(s.expectHead(Expect.Parse).change);
        s.queue.shift();
        return s.pass(f);
      case BE.BindComplete:
        s.model.confirm(s.expectHead(Expect.Bind).change);
        s.queue.shift();
        return s.pass(f);
      case BE.CloseComplete:
        s.model.confirm(s.expectHead(Expect.Close).change);
        s.queue.shift();
        return s.pass(f);
      case BE.ParameterDescription: {
        const head = s.expectHead(Expect.DescribeStatement);
        if (!head.injected) s.pass(f);
        return;
      }
      case BE.RowDescription:
        return s.shapes.onRowDescription(f);
      case BE.NoData: {
        const head = s.expectHead(Expect.DescribeStatement, Expect.DescribePortal);
        s.queue.shift();
        if (!head.injected) s.pass(f);
        return;
      }
      case BE.CommandComplete:
        return this.onCommandComplete(f);
      case BE.EmptyQueryResponse: {
        const head = s.expectHead(Expect.Execute, Expect.Query);
        if (head.expect === Expect.Execute) s.audit.finish(s.queue.shift()!);
        return s.pass(f);
      }
      case BE.PortalSuspended:
        s.audit.finish(s.expectHead(Expect.Execute));
        s.queue.shift();
        return s.pass(f);
      case BE.ErrorResponse:
        return this.onError(f);
      case BE.ReadyForQuery: {
        s.expectHead(Expect.Sync, Expect.Query);
        s.queue.shift();
        // Portals end with the transaction (WITH HOLD cursors are described again when executed).
        if (decodeReadyForQuery(f) === 'I') s.model.transactionEnd();
        return s.pass(f);
      }
      case BE.CopyOutResponse:
        return s.masker.onCopyOut(f);
      case BE.CopyData:
        return s.masker.onCopyData(f);
      case BE.ParameterStatus:
        return s.masker.onParameterStatus(f);
      case BE.NoticeResponse:
        return s.masker.onNotice(f);
      case BE.NotificationResponse:
        return s.masker.onNotification(f);
      default:
        return s.pass(f);
    }
  }

  private onCommandComplete(f: Frame): void {
    const head = this.s.expectHead(Expect.Execute, Expect.Query);
    const tag = decodeCommandComplete(f);
    if (DDL.test(tag)) this.s.rt.catalog.invalidate();
    this.s.model.confirmTag(head.change, tag);
    if (head.expect === Expect.Execute) {
      this.s.audit.finish(this.s.queue.shift()!);
    } else {
      this.s.audit.finish(head);
      head.shape = undefined;
      head.plan = undefined;
      head.copyOut = false;
      head.copyPlan = undefined;
      head.rows = 0;
      head.masked = 0;
      head.startedAt = performance.now();
    }
    this.s.pass(f);
  }

  private onError(f: Frame): void {
    const head = this.s.queue.peek();
    if (head?.denial) {
      // The answer to our deliberately failing statement: tell the agent why instead.
      this.s.clientOut.push(encodeErrorResponse(this.denialFields(head.denial, head.denialCode)));
      this.s.audit.finish(head, head.denial);
    } else {
      const masking = this.s.masking();
      const masked = masking
        ? maskNoticeMessage(f.code, f.buf, f.body, f.end, masking, this.s.masker.strictErrorsFor(head, masking), head?.text)
        : { count: 0 };
      if (head) {
        // The audit record keeps the message as the agent sees it.
        head.error =
          (masked.frame
            ? decodeNoticeFields({ ...f, buf: masked.frame, start: 0, body: 5, end: masked.frame.length })
            : decodeNoticeFields(f)
          ).M ?? 'error';
        if (masked.count > 0) {
          head.masked += masked.count;
          tally(head, masked.by);
        }
        if (head.op) this.s.audit.finish(head);
      }
      if (masked.frame) this.s.clientOut.push(masked.frame);
      else this.s.pass(f);
    }
    if (head && head.expect !== Expect.Query) {
      // The server now skips everything up to the client's next Sync. When that Sync is not here
      // yet, neither are the messages it skips: we drop them as they come, to keep the queue in step.
      if (!this.s.queue.dropUntilSync()) this.s.clientFrames.discarding = true;
    } else if (head) {
      head.denial = undefined;
    }
  }

  private denialFields(d: Decision, code = '42501'): ErrorFields {
    const policy = this.s.rt.policy().name;
    return {
      severity: 'ERROR',
      code,
      message: `agent-warden: ${d.reason}`,
      detail: `policy "${policy}", ${d.rule ? `rule "${d.rule}"` : 'default action'}, target "${this.s.rt.target}"`,
      hint: d.rule ? 'This statement is blocked by an AccessPolicy; ask your platform team if you need it.' : undefined,
    };
  }
}
