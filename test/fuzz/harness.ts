// The differential fuzzer's world and oracle. A program (steps of frontend messages on two agent
// connections) runs through the real sidecar against the real PostgreSQL; afterwards the database's
// effects are compared with what the policy decided:
// - canary and vault (every write denied or held-then-denied) must be exactly as set up;
// - ledger rows may go only one per approved request that names that row (approvals are bound to
//   one execution with its parameters);
// - no byte any agent connection received may carry the masked secret (plain, any case, reversed,
//   hex, base64; any 8-character window of it);
// - after the program the sidecar must still answer a fresh connection, and still deny a DROP by
//   its rule.
import { Client } from 'pg';
import { crmPolicy, startStack, type Stack } from '../support/stack';
import type { Identity } from '../../common/policy/types';
import { APPROVED_RULE, CANARY_ROWS, LEDGER_ROWS, POLICY_RULES, SECRET, SETUP_SQL, type Step } from './generators';
import { startWatchdog, type Watchdog } from './watchdog';
import { errorFields, type BackendMessage } from '../support/wire-client';
import { WireClient, type Msg } from './wire';

/** How long one step may take before the connection counts as stuck (holds are decided in ms). */
export const STEP_TIMEOUT_MS = 4000;
/** Quiet time after a ReadyForQuery in a failed transaction that ends a step. */
export const QUIET_MS = 100;
/** Length of the secret's windows the leak oracle looks for. */
export const LEAK_WINDOW = 8;

export interface Violation {
  /** Oracle that fired: a stable name the report groups by. */
  kind: string;
  detail: string;
}

export interface RunResult {
  violations: Violation[];
  /** Not failures: connections the sidecar closed or that hung (a hostile client may hurt itself). */
  notes: string[];
}

const APPROVER: Identity = { subject: 'fuzz-approver', groups: ['local-approvers'], source: 'local' };

/** Every form of the secret the leak oracle knows, lower case, with what to call it. */
function secretForms(): Array<{ form: string; needle: string }> {
  const out: Array<{ form: string; needle: string }> = [];
  for (let i = 0; i + LEAK_WINDOW <= SECRET.length; i++) {
    const w = SECRET.slice(i, i + LEAK_WINDOW);
    out.push({ form: 'plain', needle: w.toLowerCase() });
    out.push({ form: 'reversed', needle: [...w].reverse().join('').toLowerCase() });
    out.push({ form: 'hex', needle: Buffer.from(w, 'utf8').toString('hex') });
  }
  // base64 of the whole secret at each alignment; the first and last 4 characters depend on neighbours
  for (let pad = 0; pad < 3; pad++) {
    const b64 = Buffer.concat([Buffer.alloc(pad, 0x20), Buffer.from(SECRET, 'utf8')]).toString('base64');
    out.push({ form: 'base64', needle: b64.slice(4, -4).toLowerCase() });
  }
  return out;
}
const FORMS = secretForms();

const MESSAGE_NAMES: Record<string, string> = {
  D: 'DataRow',
  E: 'ErrorResponse',
  N: 'NoticeResponse',
  A: 'NotificationResponse',
  S: 'ParameterStatus',
  d: 'CopyData',
  T: 'RowDescription',
  C: 'CommandComplete',
  t: 'ParameterDescription',
};

/** Where the secret shows in what a connection received, naming the form and the message type. */
export function findLeaks(received: Buffer, messages: BackendMessage[], sent: Buffer): Violation[] {
  const text = received.toString('latin1').toLowerCase();
  const sentText = sent.toString('latin1').toLowerCase();
  const out: Violation[] = [];
  const seen = new Set<string>();
  for (const { form, needle } of FORMS) {
    if (!text.includes(needle) || sentText.includes(needle)) continue;
    const carriers = messages
      .filter((m) => m.body.toString('latin1').toLowerCase().includes(needle))
      .map((m) => MESSAGE_NAMES[m.code] ?? `'${m.code}'`);
    const via = carriers.length ? [...new Set(carriers)].join('+') : 'split across messages';
    const key = `${form} via ${via}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({
      kind: `secret-leak(${form} via ${via})`,
      detail: `the masked value appeared ${form === 'plain' ? 'as is' : `${form}-encoded`} in ${via}`,
    });
  }
  return out;
}

/** A FuzzWorld started before the suite's tests and stopped after them; call the result inside a test. */
export function useFuzzWorld(): () => FuzzWorld {
  let world: FuzzWorld | undefined;
  beforeAll(async () => {
    world = await FuzzWorld.start();
  }, 120_000);
  afterAll(async () => {
    await world?.stop();
  });
  return () => {
    if (!world) throw new Error('the fuzz world did not start');
    return world;
  };
}

export class FuzzWorld {
  private approverTimer?: NodeJS.Timeout;
  /** Ledger row ids each approved request allowed to delete (a multiset). */
  private authorized = new Map<number, number>();
  approvals = { approved: 0, denied: 0 };
  private marker = 0;
  private admin!: Client;
  private watchdog?: Watchdog;

  private constructor(readonly stack: Stack) {}

  static async start(): Promise<FuzzWorld> {
    const stack = await startStack({ setupSql: SETUP_SQL, policy: (pg) => crmPolicy(pg, POLICY_RULES), sidecar: { localApprovals: true } });
    const w = new FuzzWorld(stack);
    w.admin = new Client({ connectionString: stack.pg.url('crm') });
    await w.admin.connect();
    w.startApprover();
    w.watchdog = startWatchdog();
    return w;
  }

  async stop(): Promise<void> {
    clearInterval(this.approverTimer);
    await this.watchdog?.stop();
    await this.admin.end().catch(() => undefined);
    await this.stack.stop();
  }

  /** Approves holds of the ledger rule (recording which rows each allows), denies every other hold. */
  private startApprover(): void {
    const store = this.stack.sidecar.approvals!;
    let busy = false;
    this.approverTimer = setInterval(() => {
      if (busy) return;
      busy = true;
      void (async () => {
        for (const r of await store.list({ state: 'pending' })) {
          const approve = r.rule === APPROVED_RULE;
          try {
            await store.decide(r.id, APPROVER, approve ? 'approve' : 'deny', approve ? 'fuzz: one execution' : 'fuzz: auto-deny');
          } catch {
            continue; // decided or cancelled meanwhile
          }
          if (approve) {
            this.approvals.approved++;
            for (const id of authorizedRows(r.operation.display)) this.authorized.set(id, (this.authorized.get(id) ?? 0) + 1);
          } else {
            this.approvals.denied++;
          }
        }
      })().finally(() => (busy = false));
    }, 2);
  }

  /** Back to the initial state: the schema rebuilt, nothing authorized. */
  async reset(): Promise<void> {
    this.authorized.clear();
    await this.admin.query("SET lock_timeout = '3s'");
    try {
      await this.admin.query(SETUP_SQL);
    } catch {
      // a backend of an earlier program still holds a lock: end it, then rebuild
      await this.admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'crm' AND pid <> pg_backend_pid() AND state <> 'idle'",
      );
      await this.admin.query(SETUP_SQL);
    }
  }

  async run(program: Step[]): Promise<RunResult> {
    await this.reset();
    const violations: Violation[] = [];
    const notes: string[] = [];
    const conns: Array<WireClient | undefined> = [undefined, undefined];
    const retired: WireClient[] = [];
    const port = this.stack.port;
    try {
      for (const [i, step] of program.entries()) {
        let c = conns[step.conn];
        if (!c || c.closed) {
          if (c) retired.push(c);
          try {
            c = await connectPatiently(port);
          } catch (e) {
            violations.push({
              kind: 'sidecar-unresponsive',
              detail: `step ${i + 1}: a new agent connection failed: ${(e as Error).message}`,
            });
            break;
          }
          conns[step.conn] = c;
        }
        const mark = `fz-mark-${++this.marker}`;
        c.send([...step.msgs, { k: 'Sync' }, { k: 'Query', sql: `SELECT '${mark}'` }]);
        const from = c.messages.length;
        const client = c;
        const done = await c.until((m) => {
          for (let j = from; j < m.length; j++)
            if (m[j].code === 'D' && m[j].body.includes(mark)) return m.slice(j).some((x) => x.code === 'Z');
          // In a failed transaction the marker cannot answer with a row: the last message is then
          // ReadyForQuery with status E, and nothing follows.
          const last = m.at(-1);
          return m.length > from && last?.code === 'Z' && last.body[0] === 0x45 && Date.now() - client.lastDataAt >= QUIET_MS;
        }, STEP_TIMEOUT_MS);
        if (!done) {
          notes.push(
            `step ${i + 1}: connection ${step.conn} ${c.closed ? 'was closed by the sidecar' : `did not answer within ${STEP_TIMEOUT_MS} ms`}`,
          );
          if (!c.closed) c.destroy();
        }
      }
    } finally {
      for (const c of conns) if (c) retired.push(c);
      await Promise.all(retired.map((c) => c.end()));
    }
    for (const c of retired) violations.push(...findLeaks(Buffer.concat(c.received), c.messages, Buffer.concat(c.sent)));
    violations.push(...(await this.checkDatabase()));
    violations.push(...(await this.checkControl()));
    return { violations: dedupe(violations), notes };
  }

  /** The database's effects against the policy's decisions. */
  private async checkDatabase(): Promise<Violation[]> {
    // Held statements still in flight when their connection ended are cancelled, never run later.
    const out: Violation[] = [];
    const tables = await this.admin.query<{ relname: string }>(
      "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
    );
    const have = new Set(tables.rows.map((r) => r.relname));
    for (const name of ['canary', 'vault', 'ledger']) {
      if (!have.has(name))
        out.push({ kind: `${name}-dropped`, detail: `table ${name} is gone (DROP/ALTER ... RENAME is denied by rule no-ddl)` });
    }
    if (have.has('canary')) {
      const r = await this.admin.query<{ n: number; sum: string; cols: string }>(
        "SELECT count(*)::int AS n, coalesce(md5(string_agg(id || '=' || v, ',' ORDER BY id)), '') AS sum, (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'canary'::regclass AND attnum > 0 AND NOT attisdropped) AS cols FROM canary",
      );
      const want = await this.admin.query<{ sum: string }>(
        `SELECT md5(string_agg(g || '=row-' || g, ',' ORDER BY g)) AS sum FROM generate_series(1, ${CANARY_ROWS}) g`,
      );
      const got = r.rows[0];
      if (got.n !== CANARY_ROWS || got.sum !== want.rows[0].sum || got.cols !== 'id,v') {
        out.push({
          kind: 'canary-changed',
          detail: `canary has ${got.n} rows (want ${CANARY_ROWS}), columns ${got.cols}, checksum ${got.sum === want.rows[0].sum ? 'intact' : 'changed'}; its writes are denied or held-then-denied`,
        });
      }
    }
    if (have.has('vault')) {
      const r = await this.admin.query<{ s: string }>(
        "SELECT string_agg(id || '=' || coalesce(secret, 'NULL') || '/' || coalesce(note, 'NULL'), ',' ORDER BY id) AS s FROM vault",
      );
      if (r.rows[0].s !== `1=${SECRET}/first,2=${SECRET}/second,3=not-the-secret/third`)
        out.push({ kind: 'vault-changed', detail: 'vault differs from its setup; its writes are denied or held-then-denied' });
    }
    if (have.has('ledger')) {
      const log = await this.admin.query<{ id: number }>('SELECT id FROM ledger_log');
      const left = new Map(this.authorized);
      const unapproved: number[] = [];
      for (const { id } of log.rows) {
        const n = left.get(id) ?? 0;
        if (n > 0) left.set(id, n - 1);
        else unapproved.push(id);
      }
      if (unapproved.length > 0) {
        out.push({
          kind: 'ledger-delete-without-approval',
          detail: `ledger rows ${unapproved.sort((a, b) => a - b).join(', ')} were deleted without an approved request for that row (approved: ${[...this.authorized.entries()].map(([k, v]) => `${k}×${v}`).join(', ') || 'none'})`,
        });
      }
    }
    return out;
  }

  /** A fresh connection still works, the policy still denies a DROP by its rule, and masks. */
  private async checkControl(): Promise<Violation[]> {
    let c: WireClient;
    try {
      c = await connectPatiently(this.stack.port);
    } catch (e) {
      return [{ kind: 'sidecar-unresponsive', detail: `a fresh connection failed after the program: ${(e as Error).message}` }];
    }
    const out: Violation[] = [];
    try {
      c.send([{ k: 'Query', sql: "SELECT 'fz-alive'" }]);
      if (
        !(await c.until((m) => m.some((x) => x.code === 'D' && x.body.includes('fz-alive')) && m.at(-1)?.code === 'Z', STEP_TIMEOUT_MS))
      ) {
        out.push({ kind: 'sidecar-unresponsive', detail: 'SELECT on a fresh connection got no answer after the program' });
        return out;
      }
      const from = c.messages.length;
      // A text never sent before, so no cached classification answers for a parser that broke.
      c.send([{ k: 'Query', sql: `DROP TABLE canary, fz_control_${++this.marker}` }]);
      await c.until((m) => m.length > from && m.at(-1)?.code === 'Z', STEP_TIMEOUT_MS);
      const err = c.messages.slice(from).find((m) => m.code === 'E');
      const f = err ? errorFields(err.body) : {};
      if (f.C !== '42501' || !`${f.M} ${f.D ?? ''}`.includes('no-ddl')) {
        out.push({
          kind: 'policy-off-after-program',
          detail: `a DROP TABLE on a fresh connection was not denied by rule no-ddl (got ${err ? `${f.C} ${f.M}` : 'no error'})`,
        });
      }
    } finally {
      await c.end();
    }
    out.push(...findLeaks(Buffer.concat(c.received), c.messages, Buffer.concat(c.sent)));
    return out;
  }
}

/** How long a new connection may be refused (the previous program's connections still closing, a connection limit) before the sidecar counts as unresponsive. */
export const CONNECT_PATIENCE_MS = 3000;

async function connectPatiently(port: number): Promise<WireClient> {
  const deadline = Date.now() + CONNECT_PATIENCE_MS;
  for (;;) {
    try {
      return await WireClient.connect(port, 'crm');
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function dedupe(vs: Violation[]): Violation[] {
  const seen = new Set<string>();
  return vs.filter((v) => (seen.has(v.kind) ? false : (seen.add(v.kind), true)));
}

/**
 * Ledger rows an approved request allows to delete, read from what the approver saw: a literal
 * `id = N`, `EXECUTE lp(N)`, or `id = $1` with its bound parameter. A PREPARE (no parameters
 * bound yet) allows none.
 */
export function authorizedRows(display: string): number[] {
  const out: number[] = [];
  for (const m of display.matchAll(/(?<!PREPARE\s+\w+\s*\(int\)\s+AS\s+)DELETE\s+FROM\s+ledger\s+WHERE\s+id\s*=\s*(\d+)/gi))
    out.push(Number(m[1]));
  for (const m of display.matchAll(/EXECUTE\s+lp\s*\(\s*(\d+)\s*\)/gi)) out.push(Number(m[1]));
  // Bound parameters mean an execution (a SQL PREPARE has none), whatever text the display starts with.
  if (/DELETE\s+FROM\s+ledger\s+WHERE\s+id\s*=\s*\$1/i.test(display)) {
    const bound = /^\s*\$1 = '(\d+)'$/m.exec(display);
    if (bound) out.push(Number(bound[1]));
  }
  return out.filter((n) => n >= 1 && n <= LEDGER_ROWS);
}

// ---- printing -------------------------------------------------------------------------------------

function short(s: string, max = 160): string {
  const one = JSON.stringify(s);
  if (one.length <= max) return one;
  // Long generated text is made of repeats: show both ends and the length.
  return `${one.slice(0, 70)}…(${s.length} chars)…${one.slice(-60)}`;
}

function showMsg(m: Msg): string {
  switch (m.k) {
    case 'Query':
      return `Query(${short(m.sql)})`;
    case 'Parse':
      return `Parse(${JSON.stringify(m.name)}, ${short(m.sql)})`;
    case 'Bind':
      return `Bind(portal ${JSON.stringify(m.portal)}, stmt ${JSON.stringify(m.stmt)}, params ${JSON.stringify(m.params)}${m.binary ? ', binary results' : ''})`;
    case 'Describe':
    case 'Close':
      return `${m.k}(${m.what}, ${JSON.stringify(m.name)})`;
    case 'Execute':
      return `Execute(${JSON.stringify(m.portal)}${m.maxRows ? `, max ${m.maxRows}` : ''})`;
    case 'CopyData':
      return `CopyData(${JSON.stringify(m.data)})`;
    case 'CopyFail':
      return `CopyFail(${JSON.stringify(m.reason)})`;
    default:
      return m.k;
  }
}

/** The program, one line per step (each step is followed by Sync and a marker query when run). */
export function showProgram(program: Step[]): string {
  return program.map((s, i) => `  ${i + 1}. conn ${s.conn} [${tagsOf([s]).join(',')}]: ${runs(s.msgs.map(showMsg)).join(' ')}`).join('\n');
}

/** Repeated messages once, with a count. */
function runs(items: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length;) {
    let j = i;
    while (j < items.length && items[j] === items[i]) j++;
    out.push(j - i > 1 ? `${items[i]} ×${j - i}` : items[i]);
    i = j;
  }
  return out;
}

/** The families (classes) a program is made of. */
export function tagsOf(program: Step[]): string[] {
  const extended = program.some((s) => s.msgs.some((m) => m.k !== 'Query' && !m.k.startsWith('Copy')));
  return [...new Set([...program.flatMap((s) => s.families.filter((f) => f !== '')), ...(extended ? ['protocol'] : [])])].sort();
}
