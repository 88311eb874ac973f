import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

const SSL_REQUEST_CODE = 80877103;
const GSSENC_REQUEST_CODE = 80877104;
const CANCEL_REQUEST_CODE = 80877102;
const PROTOCOL_3_0 = 196608;

/** Options of {@link PgliteWireServer}. */
export interface PgliteWireServerOptions {
  /** The PGlite instance every connection shares. */
  db: PGlite;
  /** TCP port; 0 lets the operating system choose. */
  port: number;
  /** Interface to bind; loopback by default because the server has no authentication. */
  host?: string;
}

/**
 * Serves one PGlite instance over the PostgreSQL wire protocol to any number of client connections.
 *
 * PGlite is a single backend, so connections take turns. `@electric-sql/pglite-socket`'s own server
 * schedules single protocol messages, which lets another connection's `Parse` land between this
 * connection's `Parse` and `Bind` (both use the unnamed statement) and corrupt parameterised
 * queries as soon as two pool connections are busy. This server schedules whole protocol rounds
 * instead: everything up to `Sync` or a simple `Query` runs without interruption, and a connection
 * that leaves an explicit transaction open keeps the backend until it commits, rolls back or
 * disconnects (then it is rolled back).
 *
 * What remains shared between connections, unlike real PostgreSQL: session settings (`SET`),
 * session-level advisory locks (every connection is the same session, so `pg_advisory_lock` never
 * blocks another connection — use transaction-level locks), named prepared statements and
 * temporary tables. `LISTEN`/`NOTIFY` and `COPY … FROM STDIN` are not supported.
 */
export class PgliteWireServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Connection currently holding the backend (inside a protocol round or a transaction). */
  private owner: number | undefined;
  private readonly waiting: { connection: number; grant: () => void }[] = [];
  private nextConnection = 1;

  constructor(private readonly options: PgliteWireServerOptions) {}

  /**
   * Starts listening.
   * @returns the port actually bound (useful with port 0).
   */
  async start(): Promise<number> {
    if (this.server) throw new Error('PgliteWireServer already started');
    await this.options.db.waitReady;
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  /** Closes every connection and stops listening. The PGlite instance stays open. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async acquire(connection: number): Promise<void> {
    if (this.owner === undefined || this.owner === connection) {
      this.owner = connection;
      return;
    }
    await new Promise<void>((grant) => this.waiting.push({ connection, grant }));
  }

  private release(connection: number): void {
    if (this.owner !== connection) return;
    const next = this.waiting.shift();
    this.owner = next?.connection;
    next?.grant();
  }

  private accept(socket: Socket): void {
    const connection = this.nextConnection++;
    const db = this.options.db;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    let buffer = Buffer.alloc(0);
    let started = false;
    let round: Buffer[] = [];
    let closed = false;
    // Rounds of one connection run strictly in order; this chain serialises them.
    let chain: Promise<void> = Promise.resolve();

    const runRound = async (messages: Buffer[], endsRound: boolean): Promise<void> => {
      await this.acquire(connection);
      try {
        for (const message of messages) {
          if (closed) break;
          await db.execProtocolRawStream(new Uint8Array(message), {
            onRawData: (data) => {
              if (!closed && data.length > 0) socket.write(Buffer.from(data));
            },
          });
        }
      } finally {
        // A Flush leaves the connection mid-round (more Bind/Execute follow), so it keeps the backend.
        if (closed || (endsRound && !db.isInTransaction())) this.release(connection);
      }
    };

    const onClose = async (): Promise<void> => {
      if (this.owner === connection && db.isInTransaction()) {
        // The client vanished inside a transaction: undo it so the next connection starts clean.
        await db.exec('ROLLBACK').catch(() => undefined);
      }
      this.release(connection);
    };

    const enqueue = (messages: Buffer[], endsRound: boolean): void => {
      chain = chain.then(() => runRound(messages, endsRound)).catch((error: unknown) => {
        socket.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    };

    socket.on('data', (data) => {
      buffer = buffer.length === 0 ? data : Buffer.concat([buffer, data]);
      for (;;) {
        if (!started) {
          if (buffer.length < 8) return;
          const length = buffer.readInt32BE(0);
          const code = buffer.readInt32BE(4);
          if (buffer.length < length) return;
          const message = buffer.subarray(0, length);
          buffer = buffer.subarray(length);
          if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
            socket.write('N');
          } else if (code === CANCEL_REQUEST_CODE) {
            // A single backend has nothing to interrupt safely; the protocol expects no reply.
            socket.end();
            return;
          } else if (code === PROTOCOL_3_0) {
            started = true;
            enqueue([Buffer.from(message)], true);
          } else {
            socket.destroy(new Error(`unsupported startup code ${code}`));
            return;
          }
          continue;
        }
        if (buffer.length < 5) return;
        const length = 1 + buffer.readInt32BE(1);
        if (buffer.length < length) return;
        const message = Buffer.from(buffer.subarray(0, length));
        buffer = buffer.subarray(length);
        const type = String.fromCharCode(message[0] ?? 0);
        if (type === 'X') {
          socket.end();
          return;
        }
        round.push(message);
        if (type === 'S' || type === 'Q' || type === 'H') {
          enqueue(round, type !== 'H');
          round = [];
        }
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      // Rounds still queued for this connection wait for their turn, skip their messages and pass
      // the backend on, so a client that disconnects while queued never stalls the others.
      closed = true;
      this.sockets.delete(socket);
      chain = chain.then(onClose, onClose);
    });
  }
}
