import { toolFingerprint } from './fingerprint';
import { PinLimitError, ToolPins } from './pins';

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
    expect(p.check('crm', 'get_weather', undefined)).toBeUndefined();
    expect(p.observe('crm', 'get_weather', 'sha256:a', undefined)).toEqual({ changed: false });
    expect(p.observe('crm', 'get_weather', 'sha256:b', undefined)).toEqual({
      changed: true,
      expected: 'sha256:a',
      actual: 'sha256:b',
      pinned: false,
    });
    expect(p.check('crm', 'get_weather', undefined)).toMatchObject({ changed: true });
    // per target
    expect(p.observe('other', 'get_weather', 'sha256:b', undefined)).toEqual({ changed: false });
    // the policy pins the new definition
    expect(p.check('crm', 'get_weather', 'sha256:b')).toEqual({ changed: false });
    expect(p.observe('crm', 'get_weather', 'sha256:a', undefined)).toEqual({ changed: false });
  });

  it('holds a pin authoritative from the first listing on', () => {
    const p = new ToolPins();
    expect(p.observe('crm', 't', 'sha256:x', 'sha256:pinned')).toEqual({
      changed: true,
      expected: 'sha256:pinned',
      actual: 'sha256:x',
      pinned: true,
    });
    expect(p.observe('crm', 't', 'sha256:pinned', 'sha256:pinned')).toEqual({ changed: false });
  });

  it('refuses a listing past the bound, and takes the bound itself', () => {
    const p = new ToolPins(3);
    for (let i = 0; i < 3; i++) p.observe('crm', `t${i}`, 'sha256:a', undefined);
    expect(p.observe('crm', 't0', 'sha256:a', undefined)).toEqual({ changed: false });
    expect(() => p.observe('crm', 't3', 'sha256:a', undefined)).toThrow(PinLimitError);
    expect(p.observe('other', 't3', 'sha256:a', undefined)).toEqual({ changed: false });
  });
});
