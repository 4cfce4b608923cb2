import { createHash } from 'node:crypto';
import { ESCAPE_NOTE_PREFIX, mcpDigest, mcpOperation } from './operation';

const call = {
  type: 'mcp' as const,
  target: 'crm-tools',
  method: 'tools/call',
  tool: 'run_query',
  arguments: { database: 'prod', limit: 5 },
};

describe('mcpDigest', () => {
  it('is sha256 of the canonical JSON of {target, tool, arguments}', () => {
    const expected = createHash('sha256')
      .update('{"arguments":{"database":"prod","limit":5},"target":"crm-tools","tool":"run_query"}')
      .digest('hex');
    expect(mcpDigest(call)).toBe(expected);
  });

  it('does not depend on the key order the agent sent', () => {
    expect(mcpDigest({ ...call, arguments: { limit: 5, database: 'prod' } })).toBe(mcpDigest(call));
  });

  it('changes with the target, the tool, any argument, and absent vs empty arguments', () => {
    const d = mcpDigest(call);
    expect(mcpDigest({ ...call, target: 'other' })).not.toBe(d);
    expect(mcpDigest({ ...call, tool: 'run_query2' })).not.toBe(d);
    expect(mcpDigest({ ...call, arguments: { database: 'prod', limit: 6 } })).not.toBe(d);
    expect(mcpDigest({ ...call, arguments: { database: 'prod', limit: '5' } })).not.toBe(d);
    expect(mcpDigest({ ...call, arguments: undefined })).not.toBe(mcpDigest({ ...call, arguments: {} }));
  });

  it('binds method and resource for other held requests', () => {
    const read = { type: 'mcp' as const, target: 'crm-tools', method: 'resources/read', resource: 'crm://customers/1' };
    expect(mcpDigest(read)).not.toBe(mcpDigest({ ...read, resource: 'crm://customers/2' }));
    expect(mcpDigest(read)).not.toBe(mcpDigest({ ...read, method: 'prompts/get' }));
  });
});

describe('mcpOperation', () => {
  it('shows the call and its arguments', () => {
    const op = mcpOperation(call);
    expect(op).toEqual({
      kind: 'mcp',
      display: 'tools/call run_query on MCP server "crm-tools"\narguments:\n{\n  "database": "prod",\n  "limit": 5\n}',
      digest: mcpDigest(call),
    });
  });

  it('escapes what could hide text from the approver, and cuts long arguments', () => {
    const sneaky = mcpOperation({ ...call, arguments: { sql: 'SELECT 1 \u202e;elbat pord' } });
    expect(sneaky.display).not.toContain('\u202e');
    expect(sneaky.display).toContain(ESCAPE_NOTE_PREFIX);
    const long = mcpOperation({ ...call, arguments: { blob: 'a'.repeat(5000) } });
    expect(long.display.length).toBeLessThan(2200);
    expect(long.display).toContain('more characters)');
  });
});

describe('mcpOperation: what the approver reads covers everything sent', () => {
  it('shows every argument key, in canonical order, with long strings cut (the digest binds them whole)', () => {
    const args = { note: 'routine maintenance '.repeat(120), sql: 'DROP TABLE customers', database: 'prod' };
    const op = mcpOperation({ ...call, arguments: args });
    expect(op.display).toContain('"sql": "DROP TABLE customers"');
    expect(op.display).toContain('"database": "prod"');
    expect(op.display.indexOf('"database"')).toBeLessThan(op.display.indexOf('"note"'));
    expect(op.display).toMatch(/more characters\)/);
    expect(op.digest).not.toBe(mcpDigest({ ...call, arguments: { ...args, note: 'routine' } }));
  });

  it('shows and binds the other params the call carries (_meta)', () => {
    const op = mcpOperation(call, { _meta: { impersonate: 'root' } });
    expect(op.display).toContain('other params:');
    expect(op.display).toContain('"impersonate": "root"');
    expect(op.digest).toBe(mcpDigest(call, { _meta: { impersonate: 'root' } }));
    expect(op.digest).not.toBe(mcpDigest(call));
    // nothing else: the digest of the brief ({target, tool, arguments})
    expect(mcpDigest(call, {})).toBe(mcpDigest(call));
  });
});
