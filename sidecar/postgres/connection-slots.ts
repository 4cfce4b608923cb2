// Bounds the upstream connections one postgres target opens (`maxConnections`), so one agent
// cannot use up the database's connection slots. A session takes a slot before it connects
// upstream and gives it back when it ends; beyond the limit it waits briefly in a bounded queue,
// then is refused with SQLSTATE 53300 (too_many_connections), as the server itself would.

/**
 * `maxConnections` when the target does not say. PostgreSQL's usual max_connections is 100 (3 of
 * them reserved for superusers); 20 lets one agent pod run a normal connection pool (most default
 * to 10) while four such pods plus the applications still fit, and no single pod takes them all.
 */
export const DEFAULT_MAX_CONNECTIONS = 20;
/** Connections kept for the sidecar itself (the catalog connection that masking uses). */
export const RESERVED_CONNECTIONS = 1;
/** How long an agent waits for a free slot before it gets 53300. */
export const SLOT_WAIT_MS = 5_000;
/** Agents that may wait at once; one more is refused at once. */
export const MAX_WAITING = 64;

export type SlotResult = { release: () => void } | { refused: string };

interface Waiter {
  grant(): void;
}

export class ConnectionSlots {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  /** `maxConnections` is read at each use, so a reloaded policy applies to the next login. */
  constructor(
    private readonly maxConnections: () => number | undefined,
    private readonly waitMs = SLOT_WAIT_MS,
  ) {}

  /** Agent sessions allowed at once: maxConnections minus the reserved ones, at least one. */
  limit(): number {
    return Math.max(1, (this.maxConnections() ?? DEFAULT_MAX_CONNECTIONS) - RESERVED_CONNECTIONS);
  }

  get inUse(): number {
    return this.active;
  }

  /** Resolves with a release function, or the reason for refusing; `signal` abandons the wait. */
  acquire(signal?: AbortSignal): Promise<SlotResult> {
    if (this.active < this.limit() && this.waiting.length === 0) return Promise.resolve(this.grant());
    if (this.waiting.length >= MAX_WAITING) {
      return Promise.resolve({ refused: `${this.describe()}, and ${MAX_WAITING} more connections are already waiting for one` });
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        grant: () => {
          done();
          resolve(this.grant());
        },
      };
      const timer = setTimeout(() => {
        done();
        resolve({ refused: `${this.describe()}; waited ${this.waitMs / 1000}s for one to free up` });
      }, this.waitMs);
      const onAbort = (): void => {
        done();
        resolve({ refused: 'the connection was closed while waiting for a slot' });
      };
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private grant(): { release: () => void } {
    this.active++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        this.wake();
      },
    };
  }

  private wake(): void {
    while (this.active < this.limit() && this.waiting.length > 0) this.waiting[0].grant();
  }

  private describe(): string {
    const max = this.maxConnections() ?? DEFAULT_MAX_CONNECTIONS;
    return `all ${this.limit()} agent connections to this database are in use (maxConnections ${max}, ${RESERVED_CONNECTIONS} kept for the sidecar)`;
  }
}
