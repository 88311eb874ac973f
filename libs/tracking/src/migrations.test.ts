import { createHash } from 'node:crypto';
import { cp, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMigrations, DEFAULT_MIGRATIONS_DIR, MigrationError, readMigrations } from './migrations';
import { createTestDatabase, type TestDatabase } from './test-database';

let database: TestDatabase;
let scratch: string;

async function query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** A copy of the real migrations plus extra folders, to exercise failures without touching the repository. */
async function migrationsWith(extra: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(scratch, 'migrations-'));
  await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  for (const [name, sql] of Object.entries(extra)) {
    await mkdir(path.join(dir, name));
    await writeFile(path.join(dir, name, 'migration.sql'), sql);
  }
  return dir;
}

beforeAll(async () => {
  database = await createTestDatabase({ migrate: false });
  scratch = await mkdtemp(path.join(tmpdir(), 'detl-migrations-'));
});

afterAll(async () => {
  await database?.drop();
  await rm(scratch, { recursive: true, force: true });
});

describe('applyMigrations', () => {
  it('applies every migration exactly once when callers race on an empty database', async () => {
    const names = (await readMigrations()).map((migration) => migration.name);
    expect(names[0]).toMatch(/^\d{14}_init$/);
    const results = await Promise.all([1, 2, 3].map(() => applyMigrations(database.url)));
    expect(results.flatMap((result) => result.applied).sort()).toEqual(names);
    expect(await applyMigrations(database.url)).toEqual({ applied: [] });
    const rows = await query<{ migration_name: string }>('SELECT migration_name FROM _prisma_migrations');
    expect(rows.map((row) => row.migration_name).sort()).toEqual(names);
  });

  it('records migrations the way prisma migrate deploy does', async () => {
    const [init] = await readMigrations();
    const file = await readFile(path.join(DEFAULT_MIGRATIONS_DIR, init!.name, 'migration.sql'));
    const [row] = await query<{ id: string; checksum: string; finished_at: Date | null; logs: string | null; rolled_back_at: Date | null; started_at: Date; applied_steps_count: number }>(
      'SELECT * FROM _prisma_migrations WHERE migration_name = $1',
      [init!.name],
    );
    expect(row).toBeDefined();
    expect(row!.checksum).toBe(createHash('sha256').update(file).digest('hex'));
    expect(row!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(row!.finished_at).toBeInstanceOf(Date);
    expect(row!.finished_at!.getTime()).toBeGreaterThanOrEqual(row!.started_at.getTime());
    expect(row!.rolled_back_at).toBeNull();
    expect(row!.logs).toBeNull();
    expect(row!.applied_steps_count).toBe(1);
    const columns = await query<{ column_name: string; data_type: string; character_maximum_length: number | null; is_nullable: string }>(
      `SELECT column_name, data_type, character_maximum_length, is_nullable FROM information_schema.columns
       WHERE table_schema = 'public' AND table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns.map((c) => `${c.column_name} ${c.data_type}${c.character_maximum_length ? `(${c.character_maximum_length})` : ''} ${c.is_nullable}`)).toEqual([
      'id character varying(36) NO',
      'checksum character varying(64) NO',
      'finished_at timestamp with time zone YES',
      'migration_name character varying(255) NO',
      'logs text YES',
      'rolled_back_at timestamp with time zone YES',
      'started_at timestamp with time zone NO',
      'applied_steps_count integer NO',
    ]);
  });

  it('rolls back a failing migration entirely and names it', async () => {
    const dir = await migrationsWith({
      '29990101000000_broken': 'CREATE TABLE "half_done" ("id" INTEGER);\nSELECT * FROM "no_such_table";\n',
    });
    const failure = applyMigrations(database.url, { migrationsDir: dir });
    await expect(failure).rejects.toThrow(MigrationError);
    await expect(failure).rejects.toThrow(/29990101000000_broken failed: .*no_such_table/);
    expect(await query("SELECT 1 FROM information_schema.tables WHERE table_name = 'half_done'")).toHaveLength(0);
    expect(await query("SELECT 1 FROM _prisma_migrations WHERE migration_name = '29990101000000_broken'")).toHaveLength(0);
  });

  it('applies a later migration and then refuses to run once it was edited', async () => {
    const dir = await migrationsWith({ '29990102000000_extra': 'CREATE TABLE "extra_table" ("id" INTEGER);\n' });
    expect(await applyMigrations(database.url, { migrationsDir: dir })).toEqual({ applied: ['29990102000000_extra'] });
    // Git may check the same file out with CRLF line endings; Prisma accepts that, so must we.
    await writeFile(path.join(dir, '29990102000000_extra', 'migration.sql'), 'CREATE TABLE "extra_table" ("id" INTEGER);\r\n');
    expect(await applyMigrations(database.url, { migrationsDir: dir })).toEqual({ applied: [] });
    await writeFile(path.join(dir, '29990102000000_extra', 'migration.sql'), 'CREATE TABLE "extra_table" ("id" BIGINT);\n');
    await expect(applyMigrations(database.url, { migrationsDir: dir })).rejects.toThrow(/29990102000000_extra was modified after it was applied/);
  });

  it('refuses to continue past a migration Prisma recorded as failed', async () => {
    const dir = await migrationsWith({ '29990103000000_failed': 'SELECT 1;\n' });
    await query(
      `INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, applied_steps_count)
       VALUES ('00000000-0000-4000-8000-000000000001', $1, '29990103000000_failed', 'boom', 0)`,
      [createHash('sha256').update('SELECT 1;\n').digest('hex')],
    );
    await expect(applyMigrations(database.url, { migrationsDir: dir })).rejects.toThrow(/29990103000000_failed is recorded as started but not finished/);
  });

  it('reports a migration folder without migration.sql', async () => {
    const dir = await migrationsWith({});
    await mkdir(path.join(dir, '29990104000000_empty'));
    await expect(readMigrations(dir)).rejects.toThrow(/29990104000000_empty: .*migration\.sql is missing/);
  });
});
