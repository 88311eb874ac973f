import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres } from './embedded-postgres';
import { applyMigrations } from './migrations';

/** A database that exists for one test file. */
export interface TestDatabase {
  /** Connection string of the fresh database. */
  url: string;
  /** `postgresql` when it lives on the server named by `DETL_TEST_DATABASE_URL`, `pglite` when embedded. */
  engine: 'postgresql' | 'pglite';
  /** Drops the database (or stops the embedded server). */
  drop(): Promise<void>;
}

/**
 * Creates an empty database for one test file: on the PostgreSQL server of `DETL_TEST_DATABASE_URL`
 * when set (CI points it at Debian PostgreSQL; a randomly named database is created and dropped),
 * otherwise on a private in-memory embedded PGlite server on a free port.
 * @param options.migrate apply `prisma/migrations` first (default true).
 */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const serverUrl = process.env['DETL_TEST_DATABASE_URL'];
  let database: TestDatabase;
  if (serverUrl) {
    const name = `detl_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${name}"`);
    } finally {
      await admin.end();
    }
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    database = {
      url: url.toString(),
      engine: 'postgresql',
      drop: async () => {
        const client = new pg.Client({ connectionString: serverUrl });
        await client.connect();
        try {
          // FORCE ends connections a failed test may have leaked, so the drop never blocks.
          await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        } finally {
          await client.end();
        }
      },
    };
  } else {
    const server = await startEmbeddedPostgres({ port: 0 });
    database = { url: server.url, engine: 'pglite', drop: () => server.stop() };
  }
  if (options.migrate ?? true) {
    try {
      await applyMigrations(database.url);
    } catch (error) {
      await database.drop();
      throw error;
    }
  }
  return database;
}
