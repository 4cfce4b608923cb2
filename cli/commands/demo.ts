// `warden demo`: no options; cli/demo.ts runs it (from a development checkout).
import { Command } from 'commander';
import type { CommandFactory } from './factory';

export const demoCommand: CommandFactory = (ctx, exit) =>
  new Command('demo')
    .summary('run the embedded demo (real PostgreSQL, the sidecar, a scripted agent)')
    .description(
      'Run the embedded demo: a real PostgreSQL with a CRM full of PII, a sample LLM API and MCP server, the sidecar ' +
        'enforcing examples/policy.yaml, and a scripted agent. Prints what was allowed, masked, denied and held.\n\n' +
        'Runs from a development checkout (make demo); the npm package leaves its dependencies out.',
    )
    .action(async () => {
      let demo: typeof import('../demo');
      try {
        demo = await import('../demo');
      } catch (err) {
        // The demo's embedded PostgreSQL, sample servers and clients are dev dependencies: the npm
        // package (make pack) leaves them out, so there it explains instead of printing a stack.
        if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
        ctx.io.stderr(
          `warden demo runs from a development checkout (clone the repository, then \`make demo\`): ${(err as Error).message.split('\n')[0]}`,
        );
        exit(2);
        return;
      }
      exit(await demo.runDemo(ctx.io));
    });
