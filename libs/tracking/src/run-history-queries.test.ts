import { parseExperimentConfig } from '@detl/config';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COUNT_PAGES_AHEAD, createRunHistoryQueries, RUN_COUNT_CAP, type RunHistoryQueries } from './run-history-queries';
import { createTestDatabase, type TestDatabase } from './test-database';

// The list's paging and counting past the count cap, on more runs than the cap (inserted set-based;
// the dashboard's API tests cover the filters on runs written through the TrackingStore).

let database: TestDatabase;
let queries: RunHistoryQueries;
const RUNS = RUN_COUNT_CAP + 30;

beforeAll(async () => {
  database = await createTestDatabase();
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO experiments (name, workflow_id, status, config, config_hash, seed, created_at)
       SELECT 'run-' || i, 'wf-' || i, 'succeeded', jsonb_set($1::jsonb, '{model,architecture}', to_jsonb(CASE WHEN i % 2 = 0 THEN 'alexnet' ELSE 'small-vgg' END)),
              'h', i, now() - make_interval(secs => i)
       FROM generate_series(1, $2::int) i`,
      [JSON.stringify(parseExperimentConfig({})), RUNS],
    );
  } finally {
    await client.end();
  }
  queries = createRunHistoryQueries(database.url);
}, 120_000);

afterAll(async () => {
  await queries?.close();
  await database?.drop();
});

describe('listRuns', () => {
  it('counts a few pages ahead, never past the cap, says when it stopped, and still serves the pages past it', async () => {
    const first = await queries.listRuns({ page: 1, pageSize: 25, sort: 'createdAt', order: 'desc' });
    expect(first).toMatchObject({ total: (1 + COUNT_PAGES_AHEAD) * 25, totalIsLowerBound: true });
    expect(first.items[0]?.name).toBe('run-1');
    const deep = await queries.listRuns({ page: 70, pageSize: 25, sort: 'createdAt', order: 'desc' });
    expect(deep).toMatchObject({ total: RUN_COUNT_CAP, totalIsLowerBound: true });
    const wide = await queries.listRuns({ page: 1, pageSize: 200, sort: 'createdAt', order: 'desc' });
    expect(wide).toMatchObject({ total: RUN_COUNT_CAP, totalIsLowerBound: true });
    // Past the cap nothing is counted: a page with rows proves there are more than the cap …
    const pastCap = await queries.listRuns({ page: 82, pageSize: 25, sort: 'createdAt', order: 'desc' });
    expect(pastCap).toMatchObject({ total: RUN_COUNT_CAP, totalIsLowerBound: true });
    expect(pastCap.items.map((item) => item.name)).toEqual([2026, 2027, 2028, 2029, 2030].map((i) => `run-${i}`));
    // … and an empty one past the end is counted, so the pager still knows there are pages before it.
    const pastEnd = await queries.listRuns({ page: 100, pageSize: 25, sort: 'createdAt', order: 'desc' });
    expect(pastEnd).toMatchObject({ items: [], total: RUN_COUNT_CAP, totalIsLowerBound: true });
    const emptyFilter = await queries.listRuns({ page: 100, pageSize: 25, sort: 'createdAt', order: 'desc', text: 'no-such-run' });
    expect(emptyFilter).toMatchObject({ items: [], total: 0, totalIsLowerBound: false });
    const last = await queries.listRuns({ page: Math.ceil(RUNS / 25), pageSize: 25, sort: 'createdAt', order: 'desc' });
    expect(last.items.at(-1)?.name).toBe(`run-${RUNS}`);
    const narrow = await queries.listRuns({ page: 1, pageSize: 10, sort: 'name', order: 'asc', text: 'run-20' });
    // run-20, run-200 … run-209 and run-2000 … run-2030.
    expect(narrow).toMatchObject({ total: 42, totalIsLowerBound: false });
    expect(narrow.items.map((item) => item.name).slice(0, 3)).toEqual(['run-20', 'run-200', 'run-2000']);
  });

  it('filters architectures on the generated column and keeps pages disjoint in either order', async () => {
    const alexnet = await queries.listRuns({ page: 1, pageSize: 200, sort: 'createdAt', order: 'asc', architectures: ['alexnet'] });
    expect(alexnet.items.every((item) => item.architecture === 'alexnet')).toBe(true);
    expect(alexnet.items[0]?.name).toBe(`run-${RUNS % 2 === 0 ? RUNS : RUNS - 1}`);
    const both = await queries.listRuns({ page: 1, pageSize: 1, sort: 'createdAt', order: 'desc', architectures: ['alexnet', 'small-vgg'] });
    expect(both.totalIsLowerBound).toBe(true);
    const pageOne = await queries.listRuns({ page: 1, pageSize: 50, sort: 'status', order: 'asc' });
    const pageTwo = await queries.listRuns({ page: 2, pageSize: 50, sort: 'status', order: 'asc' });
    const ids = new Set([...pageOne.items, ...pageTwo.items].map((item) => item.id));
    expect(ids.size).toBe(100);
  });

  it('refuses out-of-range pages and unknown sorts before querying', async () => {
    await expect(queries.listRuns({ page: 0, pageSize: 25, sort: 'createdAt', order: 'desc' })).rejects.toThrow(/page/);
    await expect(queries.listRuns({ page: 1, pageSize: 500, sort: 'createdAt', order: 'desc' })).rejects.toThrow(/pageSize/);
    await expect(queries.listRuns({ page: 1, pageSize: 25, sort: 'id; drop' as never, order: 'desc' })).rejects.toThrow(/sort/);
  });
});
