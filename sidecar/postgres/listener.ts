// One loopback listener per postgres target; each accepted connection is a PgSession.
import * as net from 'node:net';
import type { Logger } from '../../common/log';
import { listenOn } from '../listen';
import type { TargetRuntime } from './runtime';
import { PgSession } from './session';

export class PostgresListener {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly rt: TargetRuntime & { close(): void },
    private readonly log: Logger,
    private readonly onConnections: (n: number) => void = () => undefined,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    this.onConnections(this.sockets.size);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.onConnections(this.sockets.size);
    });
    try {
      new PgSession(socket, this.rt);
    } catch (err) {
      this.log.error('could not start a session', { target: this.rt.target, error: (err as Error).message });
      socket.destroy();
    }
  }

  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    const bound = await listenOn(this.server, host, port);
    this.log.info('postgres listener ready', { target: this.rt.target, address: `${host}:${bound}` });
    return bound;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting; open sessions get `graceMs` to finish before they are cut. */
  async close(graceMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      const deadline = setTimeout(() => {
        for (const s of this.sockets) s.destroy();
      }, graceMs);
      deadline.unref();
      if (this.sockets.size === 0) clearTimeout(deadline);
    });
    this.rt.close();
  }
}
