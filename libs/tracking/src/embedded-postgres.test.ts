import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { parseExperimentConfig } from '@detl/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMBEDDED_POSTGRES_READY_PREFIX, startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres';
import { applyMigrations, readMigrations } from './migrations';
import { createTrackingStore } from './tracking-store';

// Always PGlite, whatever DETL_TEST_DATABASE_URL says: this file tests the embedded server itself.

const TSX = path.resolve(__dirname, '../../../node_modules/.bin/tsx');
let server: EmbeddedPostgres;
let scratch: string;

beforeAll(async () => {
  server = await startEmbeddedPostgres({ port: 0 });
  scratch = await mkdtemp(path.join(tmpdir(), 'detl-embedded-'));
});

afterAll(async () => {
  await server?.stop();
  await rm(scratch, { recursive: true, force: true });
});

async function connect(url = server.url): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

describe('startEmbeddedPostgres', () => {
  it('serves Prisma through @prisma/adapter-pg after the migrations are applied', async () => {
    expect(server.url).toMatch(/^postgresql:\/\/postgres:postgres@127\.0\.0\.1:\d+\/postgres$/);
    // Every migration applies on PGlite, extensions included (pg_trgm for the dashboard's name index).
    expect((await applyMigrations(server.url)).applied).toHaveLength((await readMigrations()).length);
    const store = createTrackingStore(server.url, { poolSize: 3 });
    try {
      const config = parseExperimentConfig({});
      const created = await store.createExperiment({ workflowId: 'wf-embedded', name: 'embedded', config, configHash: 'h', seed: 42 });
      await Promise.all(
        Array.from({ length: 6 }, (_, epoch) =>
          store.recordEpoch({ experimentId: created.id, task: 'pretrain', attempt: 1, epoch, trainLoss: 1 / (epoch + 1), trainAccuracy: 0.5, learningRate: 1e-3, durationMs: 10, imagesPerSecond: 40 }),
        ),
      );
      const detail = await store.getExperiment('wf-embedded');
      expect(detail?.id).toBe(created.id);
      expect(detail?.epochMetrics.map((m) => m.trainLoss)).toEqual([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6]);
    } finally {
      await store.close();
    }
  });

  it('keeps parameterised queries of concurrent connections apart', async () => {
    // Interleaving single protocol messages of two connections would bind one connection's
    // parameters to the other's unnamed statement; whole rounds must run together.
    const pool = new pg.Pool({ connectionString: server.url, max: 8 });
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          // Every third query fails to parse, which makes the backend skip messages up to the next
          // Sync: another connection's messages must never be among the skipped ones.
          (i % 3 === 0
            ? pool.query('SELEC broken $1', [i])
            : pool.query<{ text: string; n: number }>(i % 2 ? 'SELECT $1::text AS text, $2::int AS n' : 'SELECT $2::int AS n, $1::text AS text', [`v${i}`, i])
          ).then(
            (r) => `${r.rows[0]?.text}:${r.rows[0]?.n}`,
            (error: Error) => error.message,
          ),
        ),
      );
      expect(results).toEqual(Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? 'syntax error at or near "SELEC"' : `v${i}:${i}`)));
    } finally {
      await pool.end();
    }
  });

  it('gives an open transaction the backend until it ends, so others never run inside it', async () => {
    const a = await connect();
    const b = await connect();
    try {
      await a.query('CREATE TABLE isolation_probe (who TEXT)');
      await a.query('BEGIN');
      await a.query("INSERT INTO isolation_probe VALUES ('a')");
      let bDone = false;
      const bInsert = b.query("INSERT INTO isolation_probe VALUES ('b')").then(() => {
        bDone = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(bDone).toBe(false);
      await a.query('ROLLBACK');
      await bInsert;
      expect((await a.query('SELECT who FROM isolation_probe')).rows).toEqual([{ who: 'b' }]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('rolls back the transaction of a client that disconnects inside it', async () => {
    const a = await connect();
    const b = await connect();
    try {
      await a.query('CREATE TABLE disconnect_probe (n INT)');
      await a.query('BEGIN');
      await a.query('INSERT INTO disconnect_probe VALUES (1)');
      const waiting = b.query('SELECT count(*)::int AS n FROM disconnect_probe');
      await a.end();
      expect((await waiting).rows[0]).toEqual({ n: 0 });
      expect((await b.query('SELECT 1 AS ok')).rows[0]).toEqual({ ok: 1 });
    } finally {
      await b.end();
    }
  });

  it('keeps its data in dataDir across restarts', async () => {
    const dataDir = path.join(scratch, 'persistent');
    const first = await startEmbeddedPostgres({ dataDir, port: 0 });
    const writer = await connect(first.url);
    await writer.query('CREATE TABLE kept (v TEXT)');
    await writer.query("INSERT INTO kept VALUES ('survives')");
    await writer.end();
    await first.stop();
    const second = await startEmbeddedPostgres({ dataDir, port: 0 });
    try {
      const reader = await connect(second.url);
      expect((await reader.query('SELECT v FROM kept')).rows).toEqual([{ v: 'survives' }]);
      await reader.end();
    } finally {
      await second.stop();
    }
  });

  it('reports a port that is already taken', async () => {
    const port = Number(new URL(server.url).port);
    await expect(startEmbeddedPostgres({ port })).rejects.toThrow(new RegExp(`could not listen on 127.0.0.1:${port}`));
  });
});

describe('embedded-postgres-main', () => {
  function run(args: string[]): ChildProcess {
    return spawn(TSX, args, { cwd: path.resolve(__dirname, '../../..'), stdio: ['ignore', 'pipe', 'pipe'] });
  }

  async function finished(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    return { code, stdout, stderr };
  }

  it('runs in its own process, serves a CommonJS tsx client using the Prisma store, and stops on SIGTERM', async () => {
    const child = run([path.join(__dirname, 'embedded-postgres-main.ts'), '--data-dir', path.join(scratch, 'process'), '--port', '0']);
    const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const lines = createInterface({ input: child.stdout! });
      const url = await new Promise<string>((resolve, reject) => {
        lines.on('line', (line) => line.startsWith(EMBEDDED_POSTGRES_READY_PREFIX) && resolve(line.slice(EMBEDDED_POSTGRES_READY_PREFIX.length)));
        child.on('exit', (code) => reject(new Error(`embedded-postgres-main exited with ${code} before it was ready`)));
      });
      // tsx runs this workspace's TypeScript as CommonJS: the generated Prisma client must load there too.
      const script = `
        const { applyMigrations } = require(${JSON.stringify(path.join(__dirname, 'migrations.ts'))});
        const { createTrackingStore } = require(${JSON.stringify(path.join(__dirname, 'tracking-store.ts'))});
        (async () => {
          await applyMigrations(${JSON.stringify(url)});
          const store = createTrackingStore(${JSON.stringify(url)});
          const e = await store.createExperiment({ workflowId: 'wf-process', name: 'p', config: {}, configHash: 'h', seed: 1 });
          const page = await store.listExperiments({ limit: 5 });
          console.log(JSON.stringify({ same: page.items[0].id === e.id, count: page.items.length }));
          await store.close();
        })().catch((error) => { console.error(error); process.exit(1); });`;
      const client = await finished(run(['-e', script]));
      expect(client.stderr).toBe('');
      expect(client.code).toBe(0);
      expect(JSON.parse(client.stdout.trim())).toEqual({ same: true, count: 1 });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
  });

  it('rejects a malformed port with a clear message and a non-zero exit', async () => {
    const result = await finished(run([path.join(__dirname, 'embedded-postgres-main.ts'), '--port', 'abc']));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--port: expected an integer between 0 and 65535, got "abc"');
  });
});
