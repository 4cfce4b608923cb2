// Result shapes keyed by the raw bytes of their RowDescription. Agents run the same few queries
// over and over, so the decoded fields and the masking plans computed for them are reused instead
// of being rebuilt for every result. Cleared when the masking rules or the catalog change.
import type { FieldDescription } from './protocol/backend';
import type { RowPlan } from './row-masking';

export interface RowShape {
  fields: FieldDescription[];
  /** Masking plans by variant (result formats, whether the query reads protected columns). */
  plans: Map<string, RowPlan>;
  /** Made for one result only (see `transient`): its plans are never cached. */
  transient?: boolean;
}

export class ShapeCache {
  private map = new Map<string, RowShape>();
  /** Shapes handed out since the last clear: a session's memo is valid only while its shape is here. */
  private live = new WeakSet<RowShape>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxEntries = 2048,
    ttlMs = 5 * 60_000,
  ) {
    // Names behind the plans can change without DDL passing through us (another client): refresh.
    this.timer = setInterval(() => this.clear(), ttlMs);
    this.timer.unref();
  }

  get(key: string): RowShape | undefined {
    return this.map.get(key);
  }

  has(shape: RowShape): boolean {
    return this.live.has(shape);
  }

  add(key: string, fields: FieldDescription[]): RowShape {
    if (this.map.size >= this.maxEntries) this.clear();
    const shape: RowShape = { fields, plans: new Map() };
    this.map.set(key, shape);
    this.live.add(shape);
    return shape;
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
    this.map = new Map();
    this.live = new WeakSet();
  }
}
