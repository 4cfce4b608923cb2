import type * as http from 'node:http';

/** Resolves once the server has stopped accepting and its open connections have ended. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
