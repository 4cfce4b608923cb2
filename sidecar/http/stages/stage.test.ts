import { runStages, type Stage } from './stage';

interface Ctx {
  seen: string[];
}

const sync = (name: string): Stage<Ctx> => ({
  name,
  run(ctx) {
    ctx.seen.push(name);
  },
});

const waits = (name: string): Stage<Ctx> => ({
  name,
  async run(ctx) {
    await Promise.resolve();
    ctx.seen.push(name);
  },
});

describe('runStages', () => {
  it('runs synchronous stages in order without a promise', () => {
    const ctx: Ctx = { seen: [] };
    expect(runStages([sync('a'), sync('b'), sync('c')], ctx)).toBeUndefined();
    expect(ctx.seen).toEqual(['a', 'b', 'c']);
  });

  it('continues after a waiting stage, in order, and resolves when the last one is done', async () => {
    const ctx: Ctx = { seen: [] };
    const pending = runStages([sync('a'), waits('b'), sync('c'), waits('d'), sync('e')], ctx);
    expect(pending).toBeInstanceOf(Promise);
    expect(ctx.seen).toEqual(['a']);
    await pending;
    expect(ctx.seen).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('stops at a stage that throws: synchronously before any wait, as a rejection after one', async () => {
    const boom: Stage<Ctx> = {
      name: 'boom',
      run() {
        throw new Error('refused');
      },
    };
    const before: Ctx = { seen: [] };
    expect(() => runStages([sync('a'), boom, sync('c')], before)).toThrow('refused');
    expect(before.seen).toEqual(['a']);
    const after: Ctx = { seen: [] };
    await expect(runStages([waits('a'), boom, sync('c')], after)).rejects.toThrow('refused');
    expect(after.seen).toEqual(['a']);
  });
});
