// The bypass corpus: statements an agent could use to get past a policy that a regex-based
// classifier would miss, each checked end to end through compilePolicy + decide. Every entry
// names the rule that must decide it; the allowed list guards against false denials.
import { compilePolicy, type CompiledPolicy } from '../../../common/policy/compile';
import { decide } from '../../../common/policy/engine';
import type { Decision, Identity } from '../../../common/policy/types';
import { MUST_ALLOW, MUST_STOP, policyDoc } from '../../../test/support/sidecar/bypass-corpus';
import { createClassifier } from './cache';
import { classifySql, initClassifier, toSqlOperation } from './classify';

const identity: Identity = { subject: 'agent', groups: [], source: 'pod' };

let policy: CompiledPolicy;
beforeAll(async () => {
  await initClassifier();
  policy = compilePolicy(policyDoc('allow'));
});

function decideText(p: CompiledPolicy, text: string): Decision {
  return decide(p, toSqlOperation('crm', classifySql(text)), identity);
}

describe('bypass corpus: denied or held', () => {
  test('has at least 60 entries', () => expect(MUST_STOP.length).toBeGreaterThanOrEqual(60));

  test.each(MUST_STOP)('%s', (text, [action, rule]) => {
    const d = decideText(policy, text);
    expect({ action: d.action, rule: d.rule }).toEqual({ action, rule });
  });

  test('the cached classifier decides the same, cold and warm', () => {
    const c = createClassifier({ maxEntries: 1000 });
    for (let round = 0; round < 2; round++) {
      for (const [text, [action, rule]] of MUST_STOP) {
        const d = decide(policy, toSqlOperation('crm', c.classify(text)), identity);
        expect({ text, action: d.action, rule: d.rule }).toEqual({ text, action, rule });
      }
    }
  });
});

describe('bypass corpus: allowed', () => {
  test.each(MUST_ALLOW.map((t) => [t]))('%s', (text) => {
    const d = decideText(policy, text);
    expect({ action: d.action, rule: d.rule }).toEqual({ action: 'allow', rule: undefined });
  });
});

describe('unparseable statements', () => {
  const garbage = ['DR/**/OP TABLE customers', "SELECT 'unterminated", 'SELECT 1 /* unterminated', 'DELETE FROM', 'SELEC * FROM secrets'];

  test.each(garbage.map((t) => [t]))('denied under defaultAction deny: %s', (text) => {
    const deny = compilePolicy(policyDoc('deny'));
    const d = decideText(deny, text);
    expect(d.action).toBe('deny');
    expect(d.reason).toMatch(/could not be parsed/);
  });

  test('a parse error anywhere in a multi-statement string fails the whole string', () => {
    const r = classifySql('SELECT 1; DR/**/OP TABLE customers');
    expect('parseError' in r).toBe(true);
  });
});
