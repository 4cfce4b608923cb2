import type { SqlStatementInfo } from '../../common/policy/types';
import { SessionState, sqlSteps, type StatementState } from './session-state';

const st = (text: string): StatementState => ({
  op: { type: 'sql', target: 't', statements: [] },
  text,
  decision: { action: 'allow', reason: '' },
});
const info = (kind: string, extra: Partial<SqlStatementInfo> = {}): SqlStatementInfo => ({
  kind,
  kinds: [kind],
  tables: [],
  functions: [],
  columns: [],
  ...extra,
});
const parse = (m: SessionState, name: string, s: StatementState) => m.request([{ effect: { kind: 'statement', name, value: s } }], true);
const close = (m: SessionState, name: string) => m.request([{ effect: { kind: 'statement', name, value: undefined } }], true);

describe('statements follow the server', () => {
  test('a Parse counts once ParseComplete confirms it, and never when it is rejected', () => {
    const m = new SessionState();
    const a = st('DELETE');
    const c = parse(m, 'p', a);
    m.sync();
    expect(m.statement('p')).toEqual({ kind: 'wait' });
    m.confirm(c);
    expect(m.statement('p')).toEqual({ kind: 'known', value: a });
    // 42P05: the second Parse of the name is rejected, the first stays
    const dup = parse(m, 'p', st('SELECT 1'));
    m.sync();
    expect(m.statement('p')).toEqual({ kind: 'wait' });
    m.settle(dup);
    expect(m.statement('p')).toEqual({ kind: 'known', value: a });
  });

  test('a Parse earlier in the same Sync group is certain: the Bind runs only if it succeeded', () => {
    const m = new SessionState();
    const old = st('old');
    m.confirm(parse(m, '', old));
    m.sync();
    const fresh = st('new');
    parse(m, '', fresh);
    expect(m.statement('')).toEqual({ kind: 'known', value: fresh });
    // a later Sync group cannot know whether it succeeded
    m.sync();
    expect(m.statement('')).toEqual({ kind: 'wait' });
  });

  test('a Close counts once confirmed; skipped after an error, the statement stays', () => {
    const m = new SessionState();
    const a = st('a');
    m.confirm(parse(m, 'p', a));
    const c = close(m, 'p');
    expect(m.statement('p')).toEqual({ kind: 'known', value: undefined }); // in its own group
    m.settle(c); // skipped
    expect(m.statement('p')).toEqual({ kind: 'known', value: a });
    m.confirm(close(m, 'p'));
    expect(m.statement('p')).toEqual({ kind: 'known', value: undefined });
  });

  test('a simple Query changing a name in the same group is unsure (waiting could deadlock); in an earlier group it is waited for', () => {
    const m = new SessionState();
    const q = m.request([{ tag: 'DEALLOCATE', effect: { kind: 'statement', name: 'p', value: undefined } }], false);
    expect(m.statement('p')).toEqual({ kind: 'unsure' });
    m.sync();
    expect(m.statement('p')).toEqual({ kind: 'wait' });
    m.settle(q);
    expect(m.statement('p')).toEqual({ kind: 'known', value: undefined });
  });

  test('SQL steps apply by CommandComplete tag, in order; the ones after an error never do', () => {
    const m = new SessionState();
    const a = st('a');
    const b = st('b');
    const c = m.request(
      [
        { tag: 'PREPARE', effect: { kind: 'statement', name: 'a', value: a } },
        { tag: 'PREPARE', effect: { kind: 'statement', name: 'b', value: b } },
      ],
      false,
    );
    m.confirmTag(c, 'SELECT 1');
    m.confirmTag(c, 'PREPARE');
    m.settle(c); // the second PREPARE failed
    expect(m.statement('a')).toEqual({ kind: 'known', value: a });
    expect(m.statement('b')).toEqual({ kind: 'known', value: undefined });
  });

  test('DEALLOCATE ALL and DISCARD ALL drop the named statements, not the unnamed one; DISCARD ALL drops portals too', () => {
    const m = new SessionState();
    const u = st('u');
    m.confirm(parse(m, '', u));
    m.confirm(parse(m, 'x', st('x')));
    m.confirm(m.request([{ effect: { kind: 'portal', name: 'c', value: { formats: [] } } }], true));
    const all = m.request([{ tag: 'DEALLOCATE ALL', effect: { kind: 'deallocate-all' } }], false);
    expect(m.statement('x')).toEqual({ kind: 'unsure' });
    expect(m.statement('')).toEqual({ kind: 'known', value: u });
    m.confirmTag(all, 'DEALLOCATE ALL');
    m.settle(all);
    expect(m.statementNames).toEqual(['']);
    expect(m.portalNames).toEqual(['c']);
    m.confirm(parse(m, 'y', st('y')));
    const discard = m.request([{ tag: 'DISCARD ALL', effect: { kind: 'discard-all' } }], false);
    m.confirmTag(discard, 'DISCARD ALL');
    m.settle(discard);
    expect(m.statementNames).toEqual(['']);
    expect(m.portalNames).toEqual([]);
  });

  test('portals: created by BindComplete, gone at transaction end, by CLOSE ALL', () => {
    const m = new SessionState();
    const p = { formats: [] };
    const b = m.request([{ effect: { kind: 'portal', name: 'c', value: p } }], true);
    expect(m.portal('c')).toEqual({ kind: 'known', value: p });
    m.confirm(b);
    m.transactionEnd();
    expect(m.portal('c')).toEqual({ kind: 'known', value: undefined });
    m.confirm(m.request([{ effect: { kind: 'portal', name: 'c', value: p } }], true));
    const closeAll = m.request(
      sqlSteps([info('CLOSE')], () => st('')),
      false,
    );
    m.confirmTag(closeAll, 'CLOSE CURSOR ALL');
    expect(m.portalNames).toEqual([]);
  });
});

describe('sqlSteps', () => {
  test('maps PREPARE, DEALLOCATE, DISCARD ALL, DECLARE and CLOSE to the tags that confirm them', () => {
    const body = info('DELETE');
    const made: SqlStatementInfo[] = [];
    const steps = sqlSteps(
      [
        info('PREPARE', { prepares: 'p', preparedBody: body }),
        info('SELECT'),
        info('DEALLOCATE', { deallocates: 'p' }),
        info('DEALLOCATE', { deallocates: '*' }),
        info('DISCARD', { deallocates: '*' }),
        info('DISCARD'),
        info('DECLARE'),
        info('CLOSE'),
      ],
      (b) => {
        made.push(b);
        return st('prepared');
      },
    );
    expect(steps.map((s) => [s.tag, s.effect.kind])).toEqual([
      ['PREPARE', 'statement'],
      ['DEALLOCATE', 'statement'],
      ['DEALLOCATE ALL', 'deallocate-all'],
      ['DISCARD ALL', 'discard-all'],
      ['DECLARE CURSOR', 'close-portals'],
      ['CLOSE CURSOR', 'close-portals'],
    ]);
    expect(made).toEqual([body]);
  });
});
