import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseExperimentConfig, serviceEnvironment } from '@detl/config';
import { startTestMinio, type TestMinio } from '@detl/services/testing';
import { createObjectStore, gradCamOverlayKey } from '@detl/storage';
import { createTrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DETL_BIN, expectCliErrors } from '../test-support/run-detl';

// `detl dashboard` as a user starts it: on a real PostgreSQL and MinIO, serving the API and streaming
// a run's artifact out of S3, and refusing network addresses without a token before starting anything.

let minio: TestMinio;
let database: TestDatabase;
let work: string;
let env: NodeJS.ProcessEnv;
let runId: string;
const OVERLAY_KEY = (id: string) => gradCamOverlayKey(id, { trueClass: 'covid', imageId: 'img-1', predictedClass: 'covid' });

beforeAll(async () => {
  [minio, database] = await Promise.all([startTestMinio(), createTestDatabase()]);
  work = await mkdtemp(path.join(os.tmpdir(), 'detl-dashboard-'));
  env = { ...process.env, ...serviceEnvironment({ home: path.join(work, 'home'), databaseUrl: database.url, s3: minio.settings }) };
  delete env['DETL_DASHBOARD_TOKEN'];
  const tracking = createTrackingStore(database.url);
  try {
    const run = await tracking.createExperiment({ workflowId: 'dashboard-cli', name: 'dashboard-cli', config: parseExperimentConfig({}), configHash: 'h', seed: 1 });
    runId = run.id;
    const store = createObjectStore(minio.settings);
    await store.ensureBucket();
    const stored = await store.putObject(OVERLAY_KEY(runId), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]), 'image/png');
    await tracking.recordArtifacts(runId, [{ ...stored, kind: 'grad_cam' }]);
  } finally {
    await tracking.close();
  }
}, 180_000);

afterAll(async () => {
  await Promise.allSettled([minio?.stop(), database?.drop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('detl dashboard', () => {
  it('refuses a network address without a token, and bad flags, before starting anything', async () => {
    await expectCliErrors([
      [['dashboard', '--host', '0.0.0.0'], '--token', 2],
      [['dashboard', '--host', '0.0.0.0', '--token', 'short'], 'at least 16 characters', 2],
      [['dashboard', '--port', '99999'], '--port 99999', 2],
    ]);
  });

  it('serves the run history and streams a recorded artifact from S3 until interrupted', async () => {
    const child = spawn(DETL_BIN, ['dashboard', '--port', '0'], { env, cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no address printed; stderr: ${stderr}`)), 120_000);
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout);
          if (match?.[1]) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
        child.once('close', () => reject(new Error(`detl dashboard exited early: ${stderr}`)));
      });
      const list = (await (await fetch(`${url}/api/runs`)).json()) as { total: number; items: { id: string }[] };
      expect(list.total).toBe(1);
      expect(list.items[0]?.id).toBe(runId);
      const artifact = await fetch(`${url}/api/runs/${runId}/artifact?key=${encodeURIComponent(OVERLAY_KEY(runId))}`);
      expect(artifact.status).toBe(200);
      expect(artifact.headers.get('content-type')).toBe('image/png');
      expect([...new Uint8Array(await artifact.arrayBuffer())]).toEqual([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
      const page = await fetch(`${url}/runs/${runId}`);
      expect(await page.text()).toContain('<div id="root">');
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });
});
