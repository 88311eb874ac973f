import { serviceEnvironment } from '@detl/config';
import { runDetl, type DetlRun } from '../test-support/run-detl';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExperimentConfig } from '@detl/config';
import { createTrackingStore, type TrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';

// `detl runs list` and `detl runs show` as a user runs them, on a real PostgreSQL holding runs
// written through the tracking API. Two runs get ids that share a prefix, as short ids sometimes do.

let database: TestDatabase;
let tracking: TrackingStore;
let work: string;
let env: NodeJS.ProcessEnv;
const IDS = { first: 'abcd1234-0000-4000-8000-000000000001', second: 'abcd1299-0000-4000-8000-000000000002' };

function run(args: string[]): Promise<DetlRun> {
  return runDetl(args, { env, cwd: work });
}

beforeAll(async () => {
  database = await createTestDatabase();
  tracking = createTrackingStore(database.url);
  work = await mkdtemp(path.join(os.tmpdir(), 'detl-runs-'));
  // No S3 or Temporal is needed by these commands; the S3 endpoint is never contacted.
  env = { ...process.env, ...serviceEnvironment({ home: path.join(work, 'home'), databaseUrl: database.url, s3: { endpoint: 'http://s3.invalid', region: 'us-east-1', bucket: 'detl', accessKeyId: 'x', secretAccessKey: 'y', forcePathStyle: true } }) };
  const config = parseExperimentConfig({ name: 'runs-test', seed: 1 });
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    for (const [index, id] of [IDS.first, IDS.second].entries()) {
      const experiment = await tracking.createExperiment({ workflowId: `detl-runs-test-${index}`, name: `runs-test-${index}`, config, configHash: 'h', seed: 1 });
      await client.query('UPDATE experiments SET id = $1 WHERE id = $2', [id, experiment.id]);
      await tracking.markExperimentRunning(id);
      if (index === 0) await tracking.markExperimentFinished(id, { status: 'succeeded' });
    }
  } finally {
    await client.end();
  }
}, 120_000);

afterAll(async () => {
  await tracking?.close();
  await database?.drop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('detl runs', () => {
  it('shows a run by a unique id prefix, and lists the candidates of an ambiguous one', async () => {
    const [unique, ambiguous, unknown] = await Promise.all([run(['runs', 'show', 'abcd1234']), run(['runs', 'show', 'ABCD12']), run(['runs', 'show', 'ffff'])]);
    expect(unique.stderr).toBe('');
    expect(unique.code).toBe(0);
    expect(unique.stdout).toContain(`experiment ${IDS.first} (runs-test-0)`);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toContain('run ABCD12: the id prefix "ABCD12" is ambiguous');
    expect(ambiguous.stderr).toContain(IDS.first);
    expect(ambiguous.stderr).toContain(IDS.second);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no run with id, id prefix or workflow id "ffff"');
  });

  it('says that no run has the status asked for, and how many runs there are', async () => {
    // One after the other: once, under heavy load, one of two concurrent commands exited 1 here (its
    // stderr was not kept); the test is about the message, not about concurrent starts.
    const failed = await run(['runs', 'list', '--status', 'failed']);
    const all = await run(['runs', 'list']);
    expect(failed.code, failed.stderr).toBe(0);
    expect(failed.stdout).not.toContain('no runs recorded yet');
    expect(failed.stdout).toContain('no failed runs (2 runs recorded: 1 running, 1 succeeded)');
    expect(all.stdout).toContain(IDS.first);
    expect(all.stdout).toContain(IDS.second);
  });
});
