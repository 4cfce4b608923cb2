// "cannot read FILE: no such file", never a raw ENOENT with a syscall and a stack.

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
};

/** Why a file could not be read, in words. */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && REASONS[code] !== undefined) return REASONS[code];
  // Node's message repeats the code and the syscall ("ENOENT: no such file or directory, open 'x'").
  const message = (e as Error | undefined)?.message ?? String(e);
  return message.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
}

export function cannotRead(file: string, e: unknown): string {
  return `cannot read ${file}: ${fsReason(e)}`;
}
