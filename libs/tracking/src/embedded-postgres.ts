import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { PgliteWireServer } from './pglite-wire-server';

/** Prefix of the line `embedded-postgres-main.ts` prints on stdout once it accepts connections; the URL follows. */
export const EMBEDDED_POSTGRES_READY_PREFIX = 'embedded-postgres ready ';

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Folder holding the database files, created when missing; omitted means an in-memory database. */
  dataDir?: string;
  /** TCP port to listen on; 0 lets the operating system choose (the URL names the real one). */
  port: number;
  /** Interface to bind. Only loopback: the server accepts any user and password. */
  host?: '127.0.0.1';
}

/** A running embedded PostgreSQL server. */
export interface EmbeddedPostgres {
  /** Connection string for any PostgreSQL client, e.g. `postgresql://postgres:postgres@127.0.0.1:55432/postgres`. */
  url: string;
  /** Closes every connection, stops listening and closes (and flushes) the database. */
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL 17 compiled to WebAssembly (PGlite) behind a wire-protocol server, so Prisma,
 * `pg` and `psql` connect to it like to any PostgreSQL server.
 *
 * PGlite is a single backend: connections are multiplexed onto it one protocol round or one
 * transaction at a time (see {@link PgliteWireServer} for what is shared between connections).
 * Pools of several connections work and are safe, but gain no parallelism; a long transaction
 * blocks every other client until it ends. There is one database, `postgres`; user and password
 * are not checked.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const host = options.host ?? '127.0.0.1';
  // Checked before the data directory is opened: the usual cause is another server already running
  // on the same port and directory, and two PGlite instances on one directory corrupt it.
  if (options.port !== 0) await assertPortFree(host, options.port);
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  // pg_trgm backs the dashboard's name search index (prisma/migrations/*_dashboard_indexes).
  const db = await PGlite.create({ ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }), extensions: { pg_trgm } });
  const server = new PgliteWireServer({ db, port: options.port, host });
  let port: number;
  try {
    port = await server.start();
  } catch (error) {
    await db.close();
    throw new Error(`embedded PostgreSQL could not listen on ${host}:${options.port}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let stopping: Promise<void> | undefined;
  return {
    url: `postgresql://postgres:postgres@${host}:${port}/postgres`,
    stop: () => {
      stopping ??= (async () => {
        await server.stop();
        await db.close();
      })();
      return stopping;
    },
  };
}

async function assertPortFree(host: string, port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(`embedded PostgreSQL could not listen on ${host}:${port}: ${error.code === 'EADDRINUSE' ? 'the port is in use (is another detl PostgreSQL running?)' : error.message}`)),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
