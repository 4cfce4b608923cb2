// The fuzzer's oracle on its own: what counts as approved, and what counts as a leak.
import { authorizedRows, findLeaks } from './harness';
import { SECRET } from './generators';

const row = (text: string): { code: string; body: Buffer } => ({ code: 'D', body: Buffer.from(text) });

describe('authorizedRows', () => {
  test.each([
    ['DELETE FROM ledger WHERE id = 7', [7]],
    ['EXECUTE lp(3)', [3]],
    ["DELETE FROM ledger WHERE id = $1\n-- bound parameters:\n  $1 = '8'", [8]],
    ["PREPARE lp(int) AS DELETE FROM ledger WHERE id = $1\n-- bound parameters:\n  $1 = '4'", [4]],
    ['PREPARE lp(int) AS DELETE FROM ledger WHERE id = $1', []],
    ['DELETE FROM ledger WHERE id = $1', []],
    ["DELETE FROM ledger WHERE id = $1\n-- bound parameters:\n  $1 = 'x'", []],
    ['DELETE FROM ledger WHERE id = 999', []],
  ])('%j allows %j', (display, rows) => {
    expect(authorizedRows(display)).toEqual(rows);
  });
});

describe('findLeaks', () => {
  const none = Buffer.alloc(0);
  test('the secret as is, in any case, reversed, hex or base64, names the form and the message', () => {
    const forms: Array<[string, string]> = [
      ['plain', SECRET],
      ['plain', SECRET.toLowerCase().slice(3, 12)],
      ['reversed', [...SECRET].reverse().join('')],
      ['hex', Buffer.from(SECRET).toString('hex')],
      ['base64', Buffer.from(`x${SECRET}`).toString('base64')],
    ];
    for (const [form, text] of forms) {
      const b = Buffer.from(text);
      expect(findLeaks(b, [row(text)], none).map((v) => v.kind)).toContain(`secret-leak(${form} via DataRow)`);
    }
  });

  test('shorter fragments, other values and the agent’s own echoed text are not leaks', () => {
    const frag = SECRET.slice(0, 7);
    expect(findLeaks(Buffer.from(frag), [row(frag)], none)).toEqual([]);
    expect(findLeaks(Buffer.from('not-the-secret'), [row('not-the-secret')], none)).toEqual([]);
    expect(findLeaks(Buffer.from(SECRET), [row(SECRET)], Buffer.from(SECRET))).toEqual([]);
  });
});
