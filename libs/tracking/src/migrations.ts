import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/** `prisma/migrations` of this repository, where `prisma migrate dev` writes and `deploy` reads. */
export const DEFAULT_MIGRATIONS_DIR = path.resolve(__dirname, '../../../prisma/migrations');

/**
 * The advisory lock key Prisma's schema engine takes around `migrate deploy` on PostgreSQL, so
 * this applier and a concurrent `prisma migrate deploy` exclude each other too.
 */
export const PRISMA_MIGRATION_LOCK_KEY = 72707369;

/** One migration folder on disk. */
export interface MigrationFile {
  /** Folder name, e.g. `20261126153000_init`; it is also `_prisma_migrations.migration_name`. */
  name: string;
  /** Content of its `migration.sql`. */
  sql: string;
  /** Hex SHA-256 of `migration.sql` as Prisma computes it. */
  checksum: string;
}

/** Options of {@link applyMigrations}. */
export interface ApplyMigrationsOptions {
  /** Folder of migration folders; defaults to {@link DEFAULT_MIGRATIONS_DIR}. */
  migrationsDir?: string;
}

/** Raised when the database's migration history disagrees with the migration folders. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

// Same DDL as Prisma's schema engine, so Prisma reads (and keeps writing) the table we create.
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** SHA-256 of a migration script, rendered like Prisma's `_prisma_migrations.checksum`. */
export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

/**
 * Whether a script matches a recorded checksum. Prisma accepts the script with either line ending
 * convention, because git may have converted them on checkout.
 */
function matchesChecksum(sql: string, checksum: string): boolean {
  return [sql, sql.replace(/\r\n/g, '\n'), sql.replace(/\r?\n/g, '\r\n')].some((variant) => migrationChecksum(variant) === checksum);
}

/**
 * Reads the migration folders in the order Prisma applies them (by name, which starts with a UTC timestamp).
 * @throws MigrationError when a folder lacks its `migration.sql`.
 */
export async function readMigrations(migrationsDir: string = DEFAULT_MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true });
  const folders = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const migrations: MigrationFile[] = [];
  for (const name of folders) {
    const file = path.join(migrationsDir, name, 'migration.sql');
    const exists = await stat(file).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!exists) throw new MigrationError(`migration ${name}: ${file} is missing`);
    const sql = await readFile(file, 'utf8');
    migrations.push({ name, sql, checksum: migrationChecksum(sql) });
  }
  return migrations;
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/**
 * Applies the pending migrations of `prisma/migrations` to a PostgreSQL database and records them in
 * `_prisma_migrations` exactly as `prisma migrate deploy` would (same table, same checksums), so Prisma
 * later sees them as applied and `migrate deploy` / `migrate status` keep working with the real engine.
 *
 * Each migration runs in its own transaction together with its history row: it is applied entirely or
 * not at all. Every transaction first takes a transaction-level advisory lock (Prisma's key), so
 * concurrent callers, in any process, apply each migration once; transaction-level rather than
 * session-level because on the embedded PGlite server every connection shares one session.
 *
 * @param databaseUrl `postgresql://…` connection string.
 * @returns the names of the migrations this call applied, in order (empty when up to date).
 * @throws MigrationError when an applied migration was edited afterwards, a failed migration is recorded
 *   (fix it with `prisma migrate resolve`), or a migration's SQL fails (its name and the database error are given).
 */
export async function applyMigrations(databaseUrl: string, options: ApplyMigrationsOptions = {}): Promise<{ applied: string[] }> {
  const migrations = await readMigrations(options.migrationsDir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const applied: string[] = [];
  try {
    for (const migration of migrations) {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [PRISMA_MIGRATION_LOCK_KEY]);
        await client.query(CREATE_MIGRATIONS_TABLE);
        const { rows } = await client.query<AppliedRow>(
          'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" WHERE migration_name = $1 AND rolled_back_at IS NULL',
          [migration.name],
        );
        const failed = rows.find((row) => row.finished_at === null);
        if (failed) {
          throw new MigrationError(
            `migration ${migration.name} is recorded as started but not finished (a failed \`prisma migrate deploy\`?); ` +
              `resolve it with \`prisma migrate resolve --rolled-back ${migration.name}\` or \`--applied\``,
          );
        }
        const done = rows[0];
        if (done) {
          if (!matchesChecksum(migration.sql, done.checksum)) {
            throw new MigrationError(
              `migration ${migration.name} was modified after it was applied (recorded checksum ${done.checksum}, file ${migration.checksum}); ` +
                'add a new migration instead of editing an applied one',
            );
          }
          await client.query('COMMIT');
          continue;
        }
        try {
          await client.query(migration.sql);
        } catch (error) {
          throw new MigrationError(`migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
        }
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
           VALUES ($1, $2, $3, now(), clock_timestamp(), 1)`,
          [randomUUID(), migration.checksum, migration.name],
        );
        await client.query('COMMIT');
        applied.push(migration.name);
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    }
  } finally {
    await client.end();
  }
  return { applied };
}
