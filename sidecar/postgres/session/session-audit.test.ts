// The statement text kept in audit records: masked by the policy's detectors on every execution,
// also when a session keeps the masked form of a text it saw last (maskText's memo).
import { compileTargetMasking, type TargetMasking } from '../row-masking';
import type { PgSession } from '../session';
import { SessionAudit } from './session-audit';

const CARD = '4111111111111111';
const KEY = Buffer.alloc(32, 7);

function compiled(detectors: Array<'credit-card' | 'email'>): TargetMasking {
  return compileTargetMasking([{ name: 'pii', detectors, strategy: 'redact' }], 'crm', KEY)!;
}

/** A SessionAudit whose runtime serves whatever masking `current` holds (as a policy reload swaps it). */
function auditWith(current: { masking: TargetMasking | undefined }): SessionAudit {
  const session = { rt: { masking: () => current.masking } } as unknown as PgSession;
  return new SessionAudit(session);
}

describe('SessionAudit.maskText', () => {
  test('a prepared statement executed again is masked again (same result, not the raw text)', () => {
    const audit = auditWith({ masking: compiled(['credit-card']) });
    const text = `SELECT * FROM customers WHERE card = '${CARD}' AND id = $1`;
    const first = audit.maskText(text);
    expect(first).not.toContain(CARD);
    for (let i = 0; i < 3; i++) expect(audit.maskText(text)).toBe(first);
  });

  test('a reloaded policy with other detectors masks with those, not with the remembered result', () => {
    const current = { masking: compiled(['email']) as TargetMasking | undefined };
    const audit = auditWith(current);
    const text = `SELECT '${CARD}', 'ada@example.com'`;
    const emailOnly = audit.maskText(text);
    expect(emailOnly).toContain(CARD);
    expect(emailOnly).not.toContain('ada@example.com');
    current.masking = compiled(['credit-card']);
    const cardOnly = audit.maskText(text);
    expect(cardOnly).not.toContain(CARD);
    expect(cardOnly).toContain('ada@example.com');
    // No detectors left: the text is kept as sent.
    current.masking = undefined;
    expect(audit.maskText(text)).toBe(text);
    current.masking = compiled(['credit-card']);
    expect(audit.maskText(text)).not.toContain(CARD);
  });

  test('alternating texts and a text longer than the memo keeps are each masked', () => {
    const audit = auditWith({ masking: compiled(['credit-card']) });
    const a = `SELECT '${CARD}' AS a`;
    const b = `SELECT 'plain' AS b`;
    const long = `SELECT '${CARD}' AS c, '${'x'.repeat(5000)}' AS pad`;
    for (let i = 0; i < 2; i++) {
      expect(audit.maskText(a)).not.toContain(CARD);
      expect(audit.maskText(b)).toBe(b);
      expect(audit.maskText(long)).not.toContain(CARD);
      expect(audit.maskText(long)).not.toContain(CARD);
    }
  });
});
