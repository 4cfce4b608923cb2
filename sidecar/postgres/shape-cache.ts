// Result shapes keyed by the raw bytes of their RowDescription. Agents run the same few queries
// over and over, so the decoded fields and the masking plans computed for them are reused instead
// of being rebuilt for every result. Cleared when the masking rules or the catalog change.
// Bounded by entries and estimated bytes (a client can make ever-new shapes: column aliases, up
// to 1664 columns each), and by plans per shape (a client can bind ever-new result formats).
import { BoundedCache, OBJECT_BYTES, SLOT_BYTES, stringBytes } from './bounded-cache';
import type { FieldDescription } from './protocol/backend';
import type { RowPlan } from './row-masking';

/** Default byte budget of the shape cache (per target). */
export const DEFAULT_SHAPE_CACHE_BYTES = 4 * 1024 * 1024;
/** Plans kept per shape: the result format and protected-read variants a client really uses are few. */
export const MAX_PLANS_PER_SHAPE = 8;
/** A FieldDescription object: header plus seven fields (its name is charged apart). */
const FIELD_BYTES = OBJECT_BYTES + 7 * SLOT_BYTES;
/** A plan's column action. */
const ACTION_BYTES = OBJECT_BYTES + 4 * SLOT_BYTES;

export interface RowShape {
  fields: FieldDescription[];
  /** Masking plans by variant (result formats, whether the query reads protected columns). */
  plans: Map<string, RowPlan>;
  /** Made for one result only (see `transient`): its plans are never cached. */
  transient?: boolean;
  /** Its key in the cache, to charge its plans to it. */
  key?: string;
}

export class ShapeCache {
  private map: BoundedCache<RowShape>;
  /** Shapes handed out since the last clear: a session's memo is valid only while its shape is here. */
  private live = new WeakSet<RowShape>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxEntries = 2048,
    ttlMs = 5 * 60_000,
    private readonly maxBytes = DEFAULT_SHAPE_CACHE_BYTES,
  ) {
    this.map = new BoundedCache(maxEntries, maxBytes);
    // Names behind the plans can change without DDL passing through us (another client): refresh.
    this.timer = setInterval(() => this.clear(), ttlMs);
    this.timer.unref();
  }

  get size(): number {
    return this.map.size;
  }

  /** Estimated bytes held (shapes and their plans). */
  get bytes(): number {
    return this.map.bytes;
  }

  get(key: string): RowShape | undefined {
    return this.map.get(key);
  }

  has(shape: RowShape): boolean {
    return this.live.has(shape);
  }

  add(key: string, fields: FieldDescription[]): RowShape {
    const shape: RowShape = { fields, plans: new Map(), key };
    // An evicted shape stays live: sessions holding it keep using it, it is only not found by key.
    this.map.set(key, shape, fieldsBytes(fields));
    this.live.add(shape);
    return shape;
  }

  /**
   * Keeps a plan made for `shape` (not for transient shapes), charged to its entry. Past
   * MAX_PLANS_PER_SHAPE variants the plan serves this result only.
   */
  storePlan(shape: RowShape, variant: string, plan: RowPlan): void {
    if (shape.transient || shape.plans.size >= MAX_PLANS_PER_SHAPE) return;
    shape.plans.set(variant, plan);
    if (shape.key !== undefined && this.map.peek(shape.key) === shape)
      this.map.grow(shape.key, OBJECT_BYTES + stringBytes(variant) + plan.actions.length * ACTION_BYTES);
  }

  /**
   * Takes back a shape handed out before the last clear (a prepared statement keeps its shape):
   * its plans were made under rules or names that may have changed, so they are dropped.
   */
  adopt(shape: RowShape): void {
    shape.plans.clear();
    this.live.add(shape);
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** A shape kept out of the cache: `has` is false for it, so plans made for it are not reused. */
  static transient(fields: FieldDescription[]): RowShape {
    return { fields, plans: new Map(), transient: true };
  }

  clear(): void {
    this.map = new BoundedCache(this.maxEntries, this.maxBytes);
    this.live = new WeakSet();
  }
}

function fieldsBytes(fields: FieldDescription[]): number {
  let n = OBJECT_BYTES + fields.length * (SLOT_BYTES + FIELD_BYTES);
  for (const f of fields) n += stringBytes(f.name);
  return n;
}
