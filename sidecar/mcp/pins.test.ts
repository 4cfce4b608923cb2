import { toolFingerprint } from './fingerprint';
import { MAX_TOOL_NAME_LENGTH, PinLimitError, ToolNameError, ToolPins } from './pins';

describe('toolFingerprint', () => {
  it('hashes the canonical JSON of the defining fields only', () => {
    const a = toolFingerprint({ name: 't', description: 'd', inputSchema: { type: 'object', properties: { b: {}, a: {} } } });
    const b = toolFingerprint({
      inputSchema: { properties: { a: {}, b: {} }, type: 'object' },
      description: 'd',
      name: 't',
      _meta: { x: 1 },
    });
    expect(a).toBe(b);
    expect(a).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(toolFingerprint({ name: 't', description: 'd2' })).not.toBe(toolFingerprint({ name: 't', description: 'd' }));
    expect(toolFingerprint({ name: 't', annotations: { destructiveHint: true } })).not.toBe(toolFingerprint({ name: 't' }));
  });
});

describe('ToolPins', () => {
  it('trusts the first listing and reports a change until the definition comes back', () => {
    const p = new ToolPins();
    expect(p.check('crm', 'a', 'get_weather', undefined)).toBeUndefined();
    expect(p.observe('crm', 'a', 'get_weather', 'sha256:a', undefined)).toEqual({ changed: false });
    expect(p.observe('crm', 'a', 'get_weather', 'sha256:b', undefined)).toEqual({
      changed: true,
      expected: 'sha256:a',
      actual: 'sha256:b',
      pinned: false,
    });
    expect(p.check('crm', 'a', 'get_weather', undefined)).toMatchObject({ changed: true });
    // per target
    expect(p.observe('other', 'a', 'get_weather', 'sha256:b', undefined)).toEqual({ changed: false });
    // the policy pins the new definition
    expect(p.check('crm', 'a', 'get_weather', 'sha256:b')).toEqual({ changed: false });
    expect(p.observe('crm', 'a', 'get_weather', 'sha256:a', undefined)).toEqual({ changed: false });
  });

  it('holds a pin authoritative from the first listing on', () => {
    const p = new ToolPins();
    expect(p.observe('crm', 'a', 't', 'sha256:x', 'sha256:pinned')).toEqual({
      changed: true,
      expected: 'sha256:pinned',
      actual: 'sha256:x',
      pinned: true,
    });
    expect(p.observe('crm', 'a', 't', 'sha256:pinned', 'sha256:pinned')).toEqual({ changed: false });
  });

  it('refuses a listing past the bound, and takes the bound itself', () => {
    const p = new ToolPins(3);
    for (let i = 0; i < 3; i++) p.observe('crm', 'a', `t${i}`, 'sha256:a', undefined);
    expect(p.observe('crm', 'a', 't0', 'sha256:a', undefined)).toEqual({ changed: false });
    expect(() => p.observe('crm', 'a', 't3', 'sha256:a', undefined)).toThrow(PinLimitError);
    expect(p.observe('other', 'a', 't3', 'sha256:a', undefined)).toEqual({ changed: false });
  });

  it("judges each caller against what that caller was shown: another caller's listing changes nothing for it", () => {
    const p = new ToolPins();
    expect(p.observe('crm', 'alice', 'search', 'sha256:en', undefined)).toEqual({ changed: false });
    // bob is shown another definition first: his own trusted one
    expect(p.observe('crm', 'bob', 'search', 'sha256:fr', undefined)).toEqual({ changed: false });
    expect(p.check('crm', 'alice', 'search', undefined)).toEqual({ changed: false });
    expect(p.check('crm', 'bob', 'search', undefined)).toEqual({ changed: false });
    // the rug pull, as bob is shown it: bob's calls refused, alice's not
    expect(p.observe('crm', 'bob', 'search', 'sha256:evil', undefined)).toMatchObject({ changed: true, expected: 'sha256:fr' });
    expect(p.check('crm', 'bob', 'search', undefined)).toMatchObject({ changed: true, actual: 'sha256:evil' });
    expect(p.check('crm', 'alice', 'search', undefined)).toEqual({ changed: false });
    // a caller never shown the tool: rules alone
    expect(p.check('crm', 'carol', 'search', undefined)).toBeUndefined();
    // the policy pin is global: whatever a caller first saw, a definition other than the pin is changed
    expect(p.check('crm', 'alice', 'search', 'sha256:pinned')).toMatchObject({ changed: true, expected: 'sha256:pinned', pinned: true });
  });

  it('forgets the least recently seen caller past the bound on callers', () => {
    const p = new ToolPins({ callers: 2 });
    p.observe('crm', 'alice', 't', 'sha256:a', undefined);
    p.observe('crm', 'bob', 't', 'sha256:a', undefined);
    p.check('crm', 'alice', 't', undefined);
    p.observe('crm', 'alice', 't', 'sha256:b', undefined); // alice seen last: bob is the oldest
    p.observe('crm', 'carol', 't', 'sha256:a', undefined);
    expect(p.size.callers).toBe(2);
    expect(p.check('crm', 'bob', 't', undefined)).toBeUndefined();
    expect(p.check('crm', 'alice', 't', undefined)).toMatchObject({ changed: true });
  });

  it('keeps to the byte bound by refusing the listing that would pass it; no other caller is forgotten', () => {
    // A server filling the bound through one caller must not wipe another caller's first-seen
    // definitions (its next rug pull on them would then go unnoticed).
    const print = `sha256:${'0'.repeat(64)}`;
    const p = new ToolPins({ bytes: 4096 });
    for (let i = 0; i < 5; i++) p.observe('crm', 'alice', `tool_${i}`, print, undefined);
    const alice = p.size.bytes;
    expect(alice).toBeGreaterThan(5 * (2 * print.length));
    expect(alice).toBeLessThan(4096);
    let err: unknown;
    try {
      for (let i = 0; i < 100; i++) p.observe('crm', 'bob', `tool_${i}`, print, undefined);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PinLimitError);
    expect((err as PinLimitError).unit).toBe('bytes');
    expect(p.size).toMatchObject({ callers: 2 });
    expect(p.size.bytes).toBeLessThanOrEqual(4096);
    // alice's pins stand: a changed definition for her is still caught
    expect(p.check('crm', 'alice', 'tool_0', undefined)).toEqual({ changed: false });
    expect(p.observe('crm', 'alice', 'tool_0', `sha256:${'1'.repeat(64)}`, undefined)).toMatchObject({ changed: true });
    // what bob was shown before the bound still stands
    expect(p.check('crm', 'bob', 'tool_0', undefined)).toEqual({ changed: false });
  });

  it('refuses a tool name over 128 characters and keeps nothing of it', () => {
    const p = new ToolPins();
    expect(MAX_TOOL_NAME_LENGTH).toBe(128);
    expect(p.observe('crm', 'a', 'n'.repeat(128), 'sha256:a', undefined)).toEqual({ changed: false });
    const before = p.size.bytes;
    expect(() => p.observe('crm', 'a', 'n'.repeat(129), 'sha256:a', undefined)).toThrow(ToolNameError);
    expect(p.size.bytes).toBe(before);
  });
});
