// A cache bounded by entries and by estimated bytes, for every cache a client's traffic fills
// (statement classifications, result shapes): one client sending ever-new statements must not grow
// the sidecar's memory past a budget, nor flush what the other clients keep using.

/** V8's cost of a heap object header and of one property or array slot (pointer-compressed builds use less). */
export const OBJECT_BYTES = 32;
export const SLOT_BYTES = 8;
/** A Map entry with its bookkeeping object (see BoundedCache). */
export const ENTRY_BYTES = 96;

/**
 * An upper estimate of the heap a string holds: one byte a character, two once it holds one
 * beyond Latin-1 (V8's two-byte strings), plus the header. Called on inserts only, never on hits.
 */
export function stringBytes(s: string): number {
  return OBJECT_BYTES + (/[^\u0000-\u00ff]/.test(s) ? 2 * s.length : s.length);
}

interface Entry<V> {
  value: V;
  bytes: number;
  /** Read since it was inserted or last spared (CLOCK's reference bit). */
  used: boolean;
}

/**
 * A cache bounded by entries AND by estimated bytes (key + value), so a client that sends ever-new
 * long statements fills it to its byte budget and no further. Eviction is CLOCK (second chance):
 * the oldest entry goes unless it was read since it was inserted or last spared, in which case it
 * is moved to the back once. A hit only sets a flag (no delete + re-insert), and statements that
 * keep being used survive a stream of one-off texts that flushes a plain FIFO.
 */
export class BoundedCache<V> {
  private readonly map = new Map<string, Entry<V>>();
  private used = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.map.size;
  }

  /** Estimated bytes held now (never above maxBytes). */
  get bytes(): number {
    return this.used;
  }

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    e.used = true;
    return e.value;
  }

  /** Like get, without counting as a use. */
  peek(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  /** Stores `value` under `key`; `valueBytes` is its estimated size (shared values are charged to every entry). */
  set(key: string, value: V, valueBytes: number): void {
    if (this.maxEntries <= 0) return;
    const bytes = ENTRY_BYTES + stringBytes(key) + valueBytes;
    // One entry larger than the budget would evict everything else for nothing.
    if (bytes > this.maxBytes) return;
    this.delete(key);
    this.map.set(key, { value, bytes, used: false });
    this.used += bytes;
    this.evict(key);
  }

  /** Evicts until within both bounds, `key` (just added or grown) last. Each spared entry loses its flag: at most two passes. */
  private evict(key: string): void {
    while (this.used > this.maxBytes || this.map.size > this.maxEntries) {
      const [oldest, e] = this.map.entries().next().value as [string, Entry<V>];
      this.map.delete(oldest);
      if (e.used && oldest !== key) {
        e.used = false;
        this.map.set(oldest, e);
      } else this.used -= e.bytes;
    }
  }

  /** Charges `extra` more bytes to the entry under `key` (something added to its value), evicting as needed. */
  grow(key: string, extra: number): void {
    const e = this.map.get(key);
    if (e === undefined) return;
    e.bytes += extra;
    this.used += extra;
    this.evict(key);
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e === undefined) return;
    this.map.delete(key);
    this.used -= e.bytes;
  }

  clear(): void {
    this.map.clear();
    this.used = 0;
  }
}
