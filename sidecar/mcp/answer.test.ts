import type { Decision } from '../../common/policy/types';
import { planAnswer, type Verdict } from './answer';
import { classifyMessage } from './messages';

const allow: Decision = { action: 'allow', reason: 'default' };
const deny: Decision = { action: 'deny', rule: 'no-deletes', reason: 'deletes are not allowed' };
const hold: Decision = { action: 'hold', rule: 'prod-needs-approval', reason: 'needs approval' };
const call = (id: number, name: string): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name } });
const v = (msg: unknown, decision: Decision | undefined): Verdict => ({ message: classifyMessage(msg), decision });

describe('planAnswer', () => {
  it('forwards what is allowed, one message or a batch', () => {
    expect(planAnswer([v(call(1, 'a'), allow)], false)).toEqual({ forward: true });
    expect(planAnswer([v(call(1, 'a'), allow), v({ jsonrpc: '2.0', method: 'notifications/x' }, allow)], true)).toEqual({ forward: true });
  });

  it('answers a denied tools/call as a tool error naming the rule', () => {
    const a = planAnswer([v(call(5, 'delete_customer'), deny)], false);
    expect(a).toEqual({
      forward: false,
      status: 200,
      body: {
        jsonrpc: '2.0',
        id: 5,
        result: {
          isError: true,
          content: [{ type: 'text', text: expect.stringContaining('rule "no-deletes": deletes are not allowed') as string }],
        },
      },
    });
  });

  it('answers another denied request with a JSON-RPC error naming the rule', () => {
    const a = planAnswer([v({ jsonrpc: '2.0', id: 'r', method: 'resources/read', params: { uri: 'x' } }, deny)], false);
    expect(a).toMatchObject({
      forward: false,
      status: 200,
      body: { id: 'r', error: { code: -32001, data: { rule: 'no-deletes', type: 'policy_denied' } } },
    });
  });

  it('drops a denied notification with 202 and nothing', () => {
    expect(planAnswer([v({ jsonrpc: '2.0', method: 'notifications/initialized' }, deny)], false)).toEqual({
      forward: false,
      status: 202,
      body: undefined,
    });
  });

  it('answers an invalid message with 400 and invalid request', () => {
    expect(planAnswer([v({ jsonrpc: '1.0', id: 3, method: 'ping' }, undefined)], false)).toMatchObject({
      status: 400,
      body: { id: 3, error: { code: -32600 } },
    });
  });

  it('answers every request of a batch holding a denied message, and sends none', () => {
    const a = planAnswer(
      [
        v(call(1, 'search_customers'), allow),
        v(call(2, 'delete_customer'), deny),
        v({ jsonrpc: '2.0', method: 'notifications/x' }, allow),
        v(call(3, 'run_query'), hold),
      ],
      true,
    );
    expect(a.forward).toBe(false);
    if (a.forward) return;
    const body = a.body as Array<{ id: number; error?: { code: number; message: string }; result?: { isError: boolean } }>;
    expect(body.map((m) => m.id)).toEqual([1, 2, 3]);
    expect(body[0].error).toMatchObject({ code: -32002, message: expect.stringContaining('denied message') as string });
    expect(body[1].result?.isError).toBe(true);
    expect(body[2].result?.isError).toBe(true);
  });

  it('refuses an empty batch', () => {
    expect(planAnswer([], true)).toMatchObject({ forward: false, status: 400, body: { id: null, error: { code: -32600 } } });
  });
});
