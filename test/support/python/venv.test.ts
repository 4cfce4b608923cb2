// The Python example's only reason to skip is a missing Python 3.10+: findPython says which
// interpreters it tried and what they were.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findPython } from './venv';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-find-python-'));
  for (const [name, version] of [
    ['old-python', '3.9.18'],
    ['new-python', '3.12.1'],
  ]) {
    fs.writeFileSync(path.join(dir, name), `#!/bin/sh\necho ${version}\n`, { mode: 0o755 });
  }
  fs.mkdirSync(path.join(dir, 'empty'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('no python on PATH: not ok, naming what it tried and how to point at one', () => {
  const found = findPython({ PATH: path.join(dir, 'empty') });
  expect(found).toEqual({ ok: false, reason: expect.stringContaining('needs python3 >= 3.10') });
  expect(!found.ok && found.reason).toContain('python3: not found');
  expect(!found.ok && found.reason).toContain('WARDEN_PYTHON');
});

test('a Python older than 3.10 is not enough, and the reason gives its version', () => {
  const found = findPython({ PATH: path.join(dir, 'empty'), WARDEN_PYTHON: path.join(dir, 'old-python') });
  expect(found.ok).toBe(false);
  expect(!found.ok && found.reason).toContain(`${path.join(dir, 'old-python')}: 3.9.18`);
});

test('WARDEN_PYTHON is tried first', () => {
  expect(findPython({ PATH: path.join(dir, 'empty'), WARDEN_PYTHON: path.join(dir, 'new-python') })).toEqual({
    ok: true,
    python: path.join(dir, 'new-python'),
    version: '3.12.1',
  });
});
