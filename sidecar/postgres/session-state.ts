// The sidecar's model of the prepared statements and portals that exist on the server, changed only
// by what the server confirms: a Parse by its ParseComplete, a Bind by its BindComplete, a Close by
// its CloseComplete, SQL PREPARE / DEALLOCATE / DISCARD ALL / DECLARE / CLOSE by their
// CommandComplete, portals by the end of their transaction. A request the server rejects (or skips
// after an earlier error) changes nothing. Pure: no sockets, no policy.
//
// Clients pipeline (Parse, Bind, Execute, Sync all before the first answer), so a name may be
// looked up while changes to it are still unconfirmed. `lookup` then says what the server will see
// when it reaches the message being judged: certain when a change earlier in the same Sync group
// must have succeeded for that message to run at all (the server skips the rest of a group after an
// error); otherwise the meaning depends on an answer still to come, and the caller must wait for it
// (or refuse), never guess.
import type { AuditApproval } from '../../common/audit/record';
import type { Decision, SqlOperation, SqlStatementInfo } from '../../common/policy/types';
import type { RowShape } from './shape-cache';

/** A prepared statement as the sidecar knows it: a fresh object whenever the name is parsed again. */
export interface StatementState {
  op: SqlOperation;
  text: string;
  decision: Decision;
  shape?: RowShape;
  /** The hold decision of a statement that needs approval: every Bind of it is held with its parameters. */
  held?: Decision;
}

/** A portal as the sidecar knows it: each Bind makes a fresh one, so answers land on the portal they describe. */
export interface PortalState {
  /** The statement bound, as it was at Bind (undefined for a portal the sidecar did not see bound). */
  stmt?: StatementState;
  /** Result formats from Bind; empty once a portal Describe gave a shape that already carries them. */
  formats: number[];
  shape?: RowShape;
  /**
   * The client's own Describe of this very portal was forwarded (after its Bind, before any
   * Execute): the server answers it before any row of an Execute, so that answer gives the shape
   * and no Describe of ours is needed. Set on the fresh state of one Bind only.
   */
  described?: boolean;
  /** The approval that let this portal's Bind through (audit record of its Execute). */
  approval?: AuditApproval;
}

/** What one confirmed step does to the model. */
export type Effect =
  | { kind: 'statement'; name: string; value: StatementState | undefined }
  | { kind: 'portal'; name: string; value: PortalState | undefined }
  /** DEALLOCATE ALL: every named statement (the unnamed one is not in the server's table). */
  | { kind: 'deallocate-all' }
  /** CLOSE ALL, DECLARE (a SQL cursor takes a portal name we do not model): every portal. */
  | { kind: 'close-portals' }
  /** DISCARD ALL: every named statement and every portal. */
  | { kind: 'discard-all' };

export interface Step {
  /** The CommandComplete tag that confirms this step; none: the protocol message's own confirmation. */
  tag?: string;
  effect: Effect;
}

/** A change the client asked for, waiting for the server's answer. */
export interface Change {
  /** Order of sending. */
  readonly seq: number;
  readonly group: number;
  /** A Parse/Bind/Close/Execute: if it fails, the server skips the rest of its Sync group. */
  readonly extended: boolean;
  readonly steps: readonly Step[];
  /** The index keys of the names it touches. */
  readonly keys: readonly string[];
  /** Steps confirmed so far (SQL statements confirm one by one, in order). */
  next: number;
  settled: boolean;
}

export type Lookup<T> =
  /** `value` undefined: the server will have no such name, as far as the sidecar can vouch. */
  | { kind: 'known'; value: T | undefined }
  /** Depends on an answer to an earlier Sync group, which the server will send without more from the client. */
  | { kind: 'wait' }
  /** Depends on an unanswered simple Query in this same group: waiting could deadlock, so refuse. */
  | { kind: 'unsure' };

/** CLOSE name answers `CLOSE CURSOR`, CLOSE ALL answers `CLOSE CURSOR ALL`. */
const CLOSE_TAG = 'CLOSE CURSOR';

export class SessionState {
  private readonly statements = new Map<string, StatementState>();
  private readonly portals = new Map<string, PortalState>();
  /**
   * Unconfirmed changes by the name they touch (`S:name`, `P:name`; `S*`, `P*` for every named
   * statement / every portal), oldest first: a lookup costs the same however deep the pipeline.
   */
  private readonly pending = new Map<string, Change[]>();
  private seq = 0;
  /** Incremented at every Sync sent: messages between two Syncs stand or fall together. */
  private group = 0;

  /** Registers what a message will change once the server confirms it. */
  request(steps: Step[], extended: boolean): Change | undefined {
    if (steps.length === 0) return undefined;
    const c: Change = { seq: this.seq++, group: this.group, extended, steps, keys: keysOf(steps), next: 0, settled: false };
    for (const key of c.keys) {
      const list = this.pending.get(key);
      if (list) list.push(c);
      else this.pending.set(key, [c]);
    }
    return c;
  }

  /** A Sync went to the server: what follows is a new group. */
  sync(): void {
    this.group++;
  }

  /** ParseComplete, BindComplete, CloseComplete: the message's untagged steps happened. */
  confirm(c: Change | undefined): void {
    if (!c || c.settled) return;
    while (c.next < c.steps.length && c.steps[c.next].tag === undefined) this.apply(c.steps[c.next++].effect);
    this.settle(c);
  }

  /** A CommandComplete: the next step waiting for this tag happened (statements run in order). */
  confirmTag(c: Change | undefined, tag: string): void {
    if (!c || c.settled) return;
    const step = c.steps[c.next];
    if (step && (step.tag === tag || (step.tag === CLOSE_TAG && tag === `${CLOSE_TAG} ALL`))) {
      this.apply(step.effect);
      c.next++;
    }
  }

  /** The message is answered, failed or skipped: whatever of it was not confirmed never happened. */
  settle(c: Change | undefined): void {
    if (!c || c.settled) return;
    c.settled = true;
    for (const key of c.keys) {
      const list = this.pending.get(key);
      if (!list) continue;
      // Answers come in order: the settled change is almost always the oldest.
      const i = list[0] === c ? 0 : list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.pending.delete(key);
    }
  }

  /** ReadyForQuery outside a transaction block: the server dropped every portal. */
  transactionEnd(): void {
    if (this.portals.size > 0) this.portals.clear();
  }

  statement(name: string): Lookup<StatementState> {
    const lists = [this.pending.get(`S:${name}`), name === '' ? undefined : this.pending.get('S*')];
    // Nothing unconfirmed touches the name (a Bind of a statement prepared earlier): no scan.
    if (lists[0] === undefined && lists[1] === undefined) return { kind: 'known', value: this.statements.get(name) };
    return this.lookup(
      lists,
      (e) => touchesStatement(e, name),
      this.statements.get(name),
      (e) => (e.kind === 'statement' ? e.value : undefined),
    );
  }

  portal(name: string): Lookup<PortalState> {
    const lists = [this.pending.get(`P:${name}`), this.pending.get('P*')];
    if (lists[0] === undefined && lists[1] === undefined) return { kind: 'known', value: this.portals.get(name) };
    return this.lookup(
      lists,
      (e) => touchesPortal(e, name),
      this.portals.get(name),
      (e) => (e.kind === 'portal' ? e.value : undefined),
    );
  }

  /** Confirmed statements, for tests and the audit. */
  get statementNames(): string[] {
    return [...this.statements.keys()];
  }

  get portalNames(): string[] {
    return [...this.portals.keys()];
  }

  private lookup<T>(
    lists: Array<Change[] | undefined>,
    touches: (e: Effect) => boolean,
    confirmed: T | undefined,
    valueOf: (e: Effect) => T | undefined,
  ): Lookup<T> {
    // The newest unconfirmed change to the name decides.
    let newest: { c: Change; effect: Effect } | undefined;
    for (const list of lists) {
      for (let i = (list?.length ?? 0) - 1; i >= 0; i--) {
        const c = list![i];
        if (newest && c.seq < newest.c.seq) break;
        let last: Effect | undefined;
        // Steps already confirmed no longer count (a multi-statement Query confirms one by one).
        for (let j = c.next; j < c.steps.length; j++) if (touches(c.steps[j].effect)) last = c.steps[j].effect;
        if (last) {
          newest = { c, effect: last };
          break;
        }
      }
    }
    if (!newest) return { kind: 'known', value: confirmed };
    const c = newest.c;
    // Earlier in this group: it succeeded, or the message being judged never runs.
    if (c.extended && c.group === this.group) return { kind: 'known', value: valueOf(newest.effect) };
    return c.group < this.group ? { kind: 'wait' } : { kind: 'unsure' };
  }

  private apply(e: Effect): void {
    switch (e.kind) {
      case 'statement':
        if (e.value) this.statements.set(e.name, e.value);
        else this.statements.delete(e.name);
        return;
      case 'portal':
        if (e.value) this.portals.set(e.name, e.value);
        else this.portals.delete(e.name);
        return;
      case 'discard-all':
        this.portals.clear();
        this.deallocateAll();
        return;
      case 'deallocate-all':
        this.deallocateAll();
        return;
      case 'close-portals':
        this.portals.clear();
    }
  }

  private deallocateAll(): void {
    for (const k of [...this.statements.keys()]) if (k !== '') this.statements.delete(k);
  }
}

/** The index keys of the names `steps` touch. */
function keysOf(steps: readonly Step[]): string[] {
  const e0 = steps[0].effect;
  if (steps.length === 1 && (e0.kind === 'statement' || e0.kind === 'portal')) return [`${e0.kind === 'statement' ? 'S' : 'P'}:${e0.name}`];
  const keys = new Set<string>();
  for (const { effect: e } of steps) {
    if (e.kind === 'statement') keys.add(`S:${e.name}`);
    else if (e.kind === 'portal') keys.add(`P:${e.name}`);
    else if (e.kind === 'deallocate-all') keys.add('S*');
    else if (e.kind === 'close-portals') keys.add('P*');
    else keys.add('S*').add('P*');
  }
  return [...keys];
}

function touchesStatement(e: Effect, name: string): boolean {
  if (e.kind === 'statement') return e.name === name;
  return name !== '' && (e.kind === 'deallocate-all' || e.kind === 'discard-all');
}

function touchesPortal(e: Effect, name: string): boolean {
  if (e.kind === 'portal') return e.name === name;
  return e.kind === 'close-portals' || e.kind === 'discard-all';
}

/**
 * What the SQL statements of one message change, each confirmed by its own CommandComplete tag, in
 * order. `prepared` builds the state of a statement SQL PREPARE creates (judged on its own).
 */
export function sqlSteps(statements: readonly SqlStatementInfo[], prepared: (body: SqlStatementInfo) => StatementState): Step[] {
  const steps: Step[] = [];
  for (const s of statements) {
    if (s.prepares !== undefined && s.preparedBody) {
      steps.push({ tag: 'PREPARE', effect: { kind: 'statement', name: s.prepares, value: prepared(s.preparedBody) } });
    } else if (s.kind === 'DISCARD' && s.deallocates === '*') {
      steps.push({ tag: 'DISCARD ALL', effect: { kind: 'discard-all' } });
    } else if (s.deallocates === '*') {
      steps.push({ tag: 'DEALLOCATE ALL', effect: { kind: 'deallocate-all' } });
    } else if (s.deallocates !== undefined) {
      steps.push({ tag: 'DEALLOCATE', effect: { kind: 'statement', name: s.deallocates, value: undefined } });
    } else if (s.kind === 'DECLARE') {
      steps.push({ tag: 'DECLARE CURSOR', effect: { kind: 'close-portals' } });
    } else if (s.kind === 'CLOSE') {
      // Whichever cursor it closes, no portal we knew is trusted afterwards.
      steps.push({ tag: CLOSE_TAG, effect: { kind: 'close-portals' } });
    }
  }
  return steps;
}
