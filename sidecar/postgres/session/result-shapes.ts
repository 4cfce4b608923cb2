// Result shapes: the columns a result carries (RowDescription), decoded once per distinct
// description through the target's shape cache, with the catalog consulted (the server stream
// paused) for tables it does not know yet; and the row plan each result is masked with.
import type { SqlOperation, SqlStatementInfo } from '../../../common/policy/types';
import { decodeRowDescription } from '../protocol/backend';
import type { Frame } from '../protocol/frame-reader';
import { Expect, type PendingResponse } from '../response-queue';
import { missingTables, NO_MASKING, planRow, readsProtectedColumn, type RowPlan, type TargetMasking } from '../row-masking';
import { ShapeCache, type RowShape } from '../shape-cache';
import type { PgSession } from '../session';

/** Stand-in shape when no masking applies: nothing to decode or plan. */
export const NO_SHAPE: RowShape = ShapeCache.transient([]);
/** The plan of rows whose shape is unknown (never expected): built per result from the first row, masking everything. */
export const UNKNOWN_SHAPE: RowPlan = { actions: [], active: true };
export const NO_FORMATS: number[] = [];

const protectedCache = new WeakMap<readonly SqlStatementInfo[], { masking: TargetMasking; value: boolean }>();

/**
 * Whether `op` reads a column the masking protects: its values are redacted whole. Cached per
 * classification: the same statement runs over and over on one connection.
 */
export function readsProtectedOf(masking: TargetMasking, op: SqlOperation): boolean {
  let byMasking = protectedCache.get(op.statements);
  if (!byMasking || byMasking.masking !== masking) {
    // FETCH reads a cursor declared earlier, whose query we do not have here: its computed columns are masked.
    const value =
      readsProtectedColumn(masking, op.statements) || (masking.columnRules.length > 0 && op.statements.some((s) => s.kind === 'FETCH'));
    byMasking = { masking, value };
    protectedCache.set(op.statements, byMasking);
  }
  return byMasking.value;
}

export class ResultShapes {
  /** The last RowDescription seen and its shape: sessions mostly repeat one query. */
  private lastShapeBytes?: Buffer;
  private lastShape?: RowShape;
  /** A RowDescription whose catalog lookup failed: it gets a one-off shape that masks the unknown tables' columns. */
  private catalogFailed?: Frame;

  constructor(private readonly s: PgSession) {}

  onRowDescription(f: Frame): void {
    const head = this.s.expectHead(Expect.Query, Expect.DescribeStatement, Expect.DescribePortal);
    const shape = this.shapeOf(f);
    if (!shape) return; // waiting for the catalog; this frame is processed again afterwards
    if (head.expect === Expect.Query) {
      head.shape = shape;
      head.plan = undefined;
      return this.s.pass(f);
    }
    this.s.queue.shift();
    // Written into the state captured when the Describe was sent, never looked up by name now.
    if (head.expect === Expect.DescribeStatement) {
      if (head.statement) head.statement.shape = shape;
    } else if (head.portal) {
      head.portal.shape = shape;
      head.portal.formats = NO_FORMATS; // a portal's description already carries the bound formats
    }
    if (!head.injected) this.s.pass(f);
  }

  /** The decoded shape of a RowDescription, from the cache when this exact description was seen before. */
  private shapeOf(f: Frame): RowShape | undefined {
    const masking = this.s.rt.masking();
    if (!masking) return NO_SHAPE;
    const bytes = f.buf.subarray(f.body, f.end);
    if (this.lastShape && this.lastShapeBytes!.equals(bytes) && this.s.rt.shapes.has(this.lastShape)) return this.lastShape;
    const key = bytes.toString('latin1');
    const cached = this.s.rt.shapes.get(key);
    if (cached) return this.remember(bytes, cached);
    const fields = decodeRowDescription(f);
    const missing = missingTables(fields, masking, this.s.rt.catalog);
    if (missing.length > 0) {
      if (this.catalogFailed === f || this.s.rt.catalog.unavailable) {
        // The catalog cannot name these tables now: a one-off shape, neither cached nor remembered,
        // whose plan masks every column of the unknown tables (planRow fails closed on them).
        this.catalogFailed = undefined;
        return ShapeCache.transient(fields);
      }
      this.waitForCatalog(f, missing);
      return undefined;
    }
    return this.remember(bytes, this.s.rt.shapes.add(key, fields));
  }

  private remember(bytes: Buffer, shape: RowShape): RowShape {
    // A copy: the frame's buffer is the chunk it arrived in, which we must not keep alive.
    this.lastShapeBytes = Buffer.from(bytes);
    this.lastShape = shape;
    return shape;
  }

  /** Pauses the server stream until the catalog names the tables this result comes from. */
  private waitForCatalog(f: Frame, oids: number[]): void {
    const failed = (err: Error): void => {
      if (this.s.phase === 'ready') {
        const message = `catalog lookup for tables ${oids.join(', ')} failed (${err.message}): their columns are masked whole until it succeeds`;
        this.s.audit.session('catalog-error', message);
      }
      // Processed once more, without waiting again (the catalog backs off after a failure).
      this.catalogFailed = f;
    };
    this.s.retryServerFrameAfter(
      f,
      this.s.rt.catalog.load(oids).then(() => undefined, failed),
    );
  }

  planFor(head: PendingResponse): RowPlan {
    const masking = this.s.masking();
    if (!masking) return (head.plan = NO_MASKING);
    let shape = head.shape;
    let formats: number[] | undefined;
    if (head.expect === Expect.Execute) {
      shape = head.portal?.shape;
      formats = head.portal?.formats;
    }
    if (!shape || shape === NO_SHAPE) return (head.plan = UNKNOWN_SHAPE);
    // An Execute of a portal we did not see bound (a SQL cursor) may compute from protected columns.
    const readsProtected = head.op ? readsProtectedOf(masking, head.op) : masking.columnRules.length > 0;
    const variant = formats && formats.length > 0 ? `${readsProtected ? 1 : 0}:${formats.join(',')}` : readsProtected ? '1:' : '0:';
    // A shape the cache dropped since (masking or catalog changed) is taken back with its plans cleared.
    if (!shape.transient && !this.s.rt.shapes.has(shape)) this.s.rt.shapes.adopt(shape);
    let plan = shape.plans.get(variant);
    if (!plan) {
      plan = planRow({ fields: shape.fields, formats, readsProtected }, masking, this.s.rt.catalog);
      this.s.rt.shapes.storePlan(shape, variant, plan);
    }
    return (head.plan = plan);
  }
}
