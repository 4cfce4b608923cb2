// Error lines reach a terminal: what a server or the user sent in them is shown escaped, never as
// control sequences (a file name, an ID, an admin API's error text).
import { runCli } from './run';

test('an error naming what the user passed prints its control characters escaped', async () => {
  let stderr = '';
  const io = { stdout: () => undefined, stderr: (s: string) => void (stderr += s), readStdin: async () => '' };
  const code = await runCli(['validate', '/nonexistent/\u001b[2Kpolicy\u202e.yaml'], io, { env: {} });
  expect(code).toBe(2);
  expect(stderr).toContain('cannot read /nonexistent/');
  expect(stderr).not.toMatch(/[\u001b\u202e]/);
});

test('a command error (thrown to the one error printer) is escaped too', async () => {
  let stderr = '';
  const io = { stdout: () => undefined, stderr: (s: string) => void (stderr += s), readStdin: async () => '' };
  const code = await runCli(['replay', 'some-session'], io, { env: { WARDEN_SPOOL_DIR: '/nonexistent/\u001b[2Kspool\u202e' } });
  expect(code).not.toBe(0);
  expect(stderr).toContain('/nonexistent/');
  expect(stderr).not.toMatch(/[\u001b\u202e]/);
});
