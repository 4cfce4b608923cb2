// Structured JSON log lines on stderr. Callers pass fields, never secrets: credentials are read
// only inside the upstream login and never handed to a logger.
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  base: Record<string, unknown> = {},
  level: LogLevel = (process.env.WARDEN_LOG_LEVEL as LogLevel) || 'info',
  write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): Logger {
  let min = ORDER[level];
  if (min === undefined) {
    min = ORDER.info;
    write(
      JSON.stringify({
        time: new Date().toISOString(),
        level: 'warn',
        msg: `unknown log level "${level}" (WARDEN_LOG_LEVEL): using info; choose debug, info, warn or error`,
      }),
    );
  }
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < min) return;
    // time, level and msg last, so no field a caller passes can overwrite them
    write(JSON.stringify({ ...base, ...fields, time: new Date().toISOString(), level: lvl, msg }));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger({ ...base, ...f }, ORDER[level] === undefined ? 'info' : level, write),
  };
}

export const silentLogger: Logger = createLogger({}, 'error', () => undefined);
