import { MemoryObjectStore } from '@detl/storage/testing';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRunHistoryQueries, createSweepStore, createTrackingStore, type RunHistoryQueries, type SweepStore, type TrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import type { CompareResponse, ErrorResponse, GalleryResponse, RunDetailResponse, RunListResponse, ScreeningResponse, SweepCompareResponse, SweepListResponse } from '../api-types';
import { SCREENING_IMAGE_SIZE, seedScreening } from '../test-support/seed-screening';
import { seedRuns, type SeededRuns } from '../test-support/seed-runs';
import { createDashboardApp, TOKEN_COOKIE } from './dashboard-app';
import { checkDashboardBinding, DashboardConfigError, startDashboard } from './start-dashboard';

let database: TestDatabase;
let tracking: TrackingStore;
let queries: RunHistoryQueries;
let store: MemoryObjectStore;
let runs: SeededRuns;
let app: Hono;
let sweeps: SweepStore;
let work: string;

beforeAll(async () => {
  database = await createTestDatabase();
  tracking = createTrackingStore(database.url);
  queries = createRunHistoryQueries(database.url);
  store = new MemoryObjectStore();
  sweeps = createSweepStore(database.url);
  runs = await seedRuns(tracking, store, sweeps);
  work = await mkdtemp(path.join(tmpdir(), 'detl-dashboard-api-'));
  await seedScreening({ tracking, store, runId: runs.baseline, folds: 5, overlayKeys: runs.overlayKeys, workDir: work });
  app = createDashboardApp({ queries, store });
}, 180_000);

afterAll(async () => {
  await sweeps?.close();
  if (work) await rm(work, { recursive: true, force: true });
  await queries?.close();
  await tracking?.close();
  await database?.drop();
});

async function getJson<T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const response = await app.request(path, init);
  return { status: response.status, body: (await response.json()) as T };
}

describe('GET /api/runs', () => {
  it('lists newest first with totals and the table columns read from config and summary', async () => {
    const { status, body } = await getJson<RunListResponse>('/api/runs');
    expect(status).toBe(200);
    expect(body.total).toBe(4);
    expect(body.items.map((item) => item.name)).toEqual(['running resnet', 'broken folder run', 'scratch alexnet', 'baseline small-vgg']);
    const baseline = body.items.find((item) => item.id === runs.baseline);
    expect(baseline).toMatchObject({ architecture: 'small-vgg', dataset: 'synthetic', imageSize: 64, backend: 'wasm', status: 'succeeded' });
    expect(baseline?.meanAccuracy).toBeGreaterThan(0.5);
    expect(body.items.find((item) => item.id === runs.broken)?.dataset).toBe('/data/cxr');
  });

  it('filters by status, architecture, name text and date range, and combines them', async () => {
    const failed = await getJson<RunListResponse>('/api/runs?status=failed');
    expect(failed.body.items.map((item) => item.id)).toEqual([runs.broken]);
    const two = await getJson<RunListResponse>('/api/runs?status=failed,running');
    expect(two.body.total).toBe(2);
    const alexnet = await getJson<RunListResponse>('/api/runs?architecture=alexnet');
    expect(alexnet.body.items.map((item) => item.id)).toEqual([runs.scratch]);
    const text = await getJson<RunListResponse>('/api/runs?q=SMALL-vgg');
    expect(text.body.items.map((item) => item.id)).toEqual([runs.baseline]);
    // LIKE wildcards in the search are literal.
    expect((await getJson<RunListResponse>('/api/runs?q=%25')).body.total).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    expect((await getJson<RunListResponse>(`/api/runs?from=${today}&to=${today}`)).body.total).toBe(4);
    expect((await getJson<RunListResponse>('/api/runs?to=2000-01-01')).body.total).toBe(0);
    expect((await getJson<RunListResponse>('/api/runs?status=succeeded&architecture=small-vgg,alexnet&q=a')).body.total).toBe(2);
  });

  it('sorts and paginates on the server', async () => {
    const byAccuracy = await getJson<RunListResponse>('/api/runs?sort=meanAccuracy&order=desc');
    expect(byAccuracy.body.items.slice(0, 2).map((item) => item.id)).toEqual([runs.baseline, runs.scratch]);
    const byName = await getJson<RunListResponse>('/api/runs?sort=name&order=asc&pageSize=3&page=2');
    expect(byName.body).toMatchObject({ total: 4, page: 2, pageSize: 3 });
    expect(byName.body.items.map((item) => item.name)).toEqual(['scratch alexnet']);
  });

  it.each([
    ['page=0', 'page'],
    ['pageSize=1000', 'pageSize'],
    ['sort=id;drop table experiments', 'sort'],
    ['order=up', 'order'],
    ['status=done', 'status'],
    ['architecture=Robert%27);--', 'architecture'],
    ['from=yesterday', 'from'],
    ['from=2026-02-01&to=2026-01-01', 'to'],
    [`q=${'x'.repeat(201)}`, 'q'],
    ['colour=red', 'colour'],
  ])('answers 400 naming the field for %s', async (query, field) => {
    const { status, body } = await getJson<ErrorResponse>(`/api/runs?${query}`);
    expect(status).toBe(400);
    expect(body.field).toBe(field);
    expect(body.error).toContain(field);
  });
});

describe('GET /api/runs/:id', () => {
  it('returns config, attempts with their errors, curves, folds, summary and Grad-CAM overlays', async () => {
    const { status, body } = await getJson<RunDetailResponse>(`/api/runs/${runs.baseline}`);
    expect(status).toBe(200);
    expect((body.config['model'] as Record<string, unknown>)['architecture']).toBe('small-vgg');
    const pretrain = body.stageAttempts.filter((attempt) => attempt.task === 'pretrain');
    expect(pretrain.map((attempt) => [attempt.attempt, attempt.status])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(pretrain[0]?.error).toContain('worker lost');
    expect(new Set(body.epochMetrics.map((epoch) => epoch.task))).toEqual(new Set(['pretrain', 'fold-0', 'fold-1', 'fold-2', 'fold-3', 'fold-4']));
    expect(body.folds.map((fold) => fold.foldIndex)).toEqual([0, 1, 2, 3, 4]);
    expect(body.summary?.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(160);
    expect(body.gradCams).toHaveLength(4);
    expect(body.gradCams.find((cam) => cam.trueClass === 'pneumonia')).toMatchObject({ predictedClass: 'normal', image: 'img-1' });
  });

  it('answers 404 for an unknown run and 400 for a malformed id', async () => {
    expect((await app.request('/api/runs/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    const bad = await getJson<ErrorResponse>('/api/runs/not-a-uuid');
    expect(bad.status).toBe(400);
    expect(bad.body.field).toBe('id');
  });
});

describe('GET /api/runs/:id/artifact', () => {
  it('streams a recorded artifact with its type and hash', async () => {
    const detail = (await getJson<RunDetailResponse>(`/api/runs/${runs.baseline}`)).body;
    const cam = detail.gradCams[0];
    const response = await app.request(cam?.url ?? '');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/png');
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect([...bytes.slice(1, 4)]).toEqual([0x50, 0x4e, 0x47]);
    expect(response.headers.get('etag')).toMatch(/^"[0-9a-f]{64}"$/);
    expect(response.headers.get('content-security-policy')).toContain('sandbox');
  });

  it('refuses keys that are not the run’s own artifacts, even when they exist in the bucket', async () => {
    const other = await app.request(`/api/runs/${runs.scratch}/artifact?key=${encodeURIComponent((await getJson<RunDetailResponse>(`/api/runs/${runs.baseline}`)).body.gradCams[0]?.key ?? '')}`);
    expect(other.status).toBe(404);
    expect((await app.request(`/api/runs/${runs.baseline}/artifact?key=shards/not-an-artifact.u8`)).status).toBe(404);
    expect((await app.request(`/api/runs/${runs.baseline}/artifact`)).status).toBe(400);
  });
});

describe('GET /api/compare', () => {
  it('diffs only the config paths that differ and returns each run’s metrics', async () => {
    const { status, body } = await getJson<CompareResponse>(`/api/compare?ids=${runs.baseline},${runs.scratch}`);
    expect(status).toBe(200);
    expect(body.runs.map((run) => run.id)).toEqual([runs.baseline, runs.scratch]);
    const paths = body.configDiff.map((difference) => difference.path);
    expect(paths).toEqual(expect.arrayContaining(['model.architecture', 'fineTune.freeze', 'fineTune.learningRate', 'pretrain.epochs']));
    expect(paths).not.toContain('dataset.imageSize');
    expect(body.configDiff.find((difference) => difference.path === 'model.architecture')?.values).toEqual(['small-vgg', 'alexnet']);
  });

  it.each([['ids=' + '0'.repeat(8)], ['ids='], ['ids=a,b,c,d,e,f']])('answers 400 for %s', async (query) => {
    const { status, body } = await getJson<ErrorResponse>(`/api/compare?${query}`);
    expect(status).toBe(400);
    expect(body.field).toBe('ids');
  });

  it('refuses one run given twice and says which ids do not exist', async () => {
    expect((await app.request(`/api/compare?ids=${runs.baseline},${runs.baseline}`)).status).toBe(400);
    const missing = await getJson<ErrorResponse>(`/api/compare?ids=${runs.baseline},00000000-0000-4000-8000-000000000000`);
    expect(missing.status).toBe(404);
    expect(missing.body.error).toContain('00000000-0000-4000-8000-000000000000');
  });
});

describe('sweeps', () => {
  it('filters runs by sweep, names each run’s sweep, and lists sweeps with their counts', async () => {
    const { body } = await getJson<RunListResponse>(`/api/runs?sweep=${runs.sweep}&sort=name&order=asc`);
    expect(body.items.map((item) => item.name)).toEqual(['baseline small-vgg', 'scratch alexnet']);
    expect(body.items[1]?.sweep).toEqual({ id: runs.sweep, name: 'regime sweep', index: 1 });
    const all = await getJson<RunListResponse>('/api/runs');
    expect(all.body.items.find((item) => item.name === 'broken folder run')?.sweep).toBeNull();
    const bad = await getJson<ErrorResponse>("/api/runs?sweep=1'%20OR%20'1'='1");
    expect(bad).toMatchObject({ status: 400, body: { field: 'sweep' } });
    const list = await getJson<SweepListResponse>('/api/sweeps');
    expect(list.body).toMatchObject({ total: 1, page: 1 });
    expect(list.body.items[0]).toMatchObject({ id: runs.sweep, name: 'regime sweep', status: 'succeeded', planned: 2, counts: { succeeded: 2, pending: 0 } });
    expect((await getJson<ErrorResponse>('/api/sweeps?pageSize=1000')).status).toBe(400);
  });

  it('compares a whole sweep: its plan, each experiment in full and the config paths that differ', async () => {
    const { status, body } = await getJson<SweepCompareResponse>(`/api/sweeps/${runs.sweep}/compare`);
    expect(status).toBe(200);
    expect(body.sweep.plan.map((entry) => entry.index)).toEqual([0, 1]);
    expect(body.runs.map((run) => run.name)).toEqual(['baseline small-vgg', 'scratch alexnet']);
    expect(body.configDiff.map((difference) => difference.path)).toEqual(expect.arrayContaining(['model.architecture', 'fineTune.freeze']));
    expect(body.truncated).toBe(false);
    expect((await getJson<ErrorResponse>('/api/sweeps/00000000-0000-4000-8000-000000000000/compare')).status).toBe(404);
    expect((await getJson<ErrorResponse>('/api/sweeps/nope/compare')).status).toBe(400);
  });
});

describe('screening and the Grad-CAM gallery', () => {
  it('tells the browser how the run preprocessed images (from its manifest) and where its fold models are', async () => {
    const { status, body } = await getJson<ScreeningResponse>(`/api/runs/${runs.baseline}/screening`);
    expect(status).toBe(200);
    expect(body.preprocessing).toMatchObject({ imageSize: SCREENING_IMAGE_SIZE, degradeToPixels: null, crop: 'centre-crop-to-square', resizeKernel: 'lanczos3', scale: 255 });
    expect(body.models.map((model) => model.fold)).toEqual([0, 1, 2, 3, 4]);
    expect(body.ensemble).toBe('mean of probabilities');
    // The run's evaluation.testTimeFlip (off by default), which the page applies as detl predict does.
    expect(body.testTimeFlip).toBe(false);
    // …and its gradCam.method (grad-cam++ by default), with which the page makes its maps.
    expect(body.gradCamMethod).toBe('grad-cam++');
    // The failed run has no fold model; the scratch run no manifest.
    expect((await getJson<ErrorResponse>(`/api/runs/${runs.broken}/screening`)).status).toBe(409);
  });

  it('serves a fold model’s model.json and weights read-only, and nothing else under the prefix', async () => {
    const model = await app.request(`/api/runs/${runs.baseline}/models/2/model.json`);
    expect(model.status).toBe(200);
    const json = (await model.json()) as { weightsManifest: { paths: string[] }[] };
    expect(json.weightsManifest[0]?.paths).toEqual(['./weights.bin']);
    const weights = await app.request(`/api/runs/${runs.baseline}/models/2/weights.bin`);
    expect(weights.status).toBe(200);
    expect((await weights.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    expect((await getJson<ErrorResponse>(`/api/runs/${runs.baseline}/models/2/optimizer.json`)).body.field).toBe('file');
    expect((await getJson<ErrorResponse>(`/api/runs/${runs.baseline}/models/9/model.json`)).status).toBe(404);
    expect((await getJson<ErrorResponse>(`/api/runs/${runs.scratch}/models/0/model.json`)).status).toBe(404);
    expect((await app.request(`/api/runs/${runs.baseline}/models/2/model.json`, { method: 'PUT' })).status).toBe(404);
  });

  it('lists the gallery with each overlay’s image, classes, probability and fold, and serves the input image', async () => {
    const { body } = await getJson<GalleryResponse>(`/api/runs/${runs.baseline}/gallery`);
    expect(body.recorded).toBe(true);
    expect(body.entries).toHaveLength(4);
    expect(body.entries[1]).toMatchObject({ trueClass: 'pneumonia', predictedClass: 'normal', probability: 0.5 });
    expect(body.entries.every((entry) => entry.fold === 0 || entry.fold === 1)).toBe(true);
    const image = await app.request(body.entries[0]?.imageUrl ?? '');
    expect(image.headers.get('content-type')).toBe('image/png');
    const metadata = await sharp(Buffer.from(await image.arrayBuffer())).metadata();
    expect(metadata).toMatchObject({ format: 'png', width: SCREENING_IMAGE_SIZE, height: SCREENING_IMAGE_SIZE });
    expect((await getJson<ErrorResponse>(`/api/runs/${runs.baseline}/gallery/99/image`)).status).toBe(404);
    // A run without a gallery index: only what the overlay keys say.
    expect((await getJson<GalleryResponse>(`/api/runs/${runs.scratch}/gallery`)).body).toMatchObject({ recorded: false, entries: [] });
  });
});

describe('access', () => {
  it('needs a token for any address but loopback, and refuses to start without one', async () => {
    expect(() => checkDashboardBinding('127.0.0.1', undefined)).not.toThrow();
    expect(() => checkDashboardBinding('0.0.0.0', undefined)).toThrow(DashboardConfigError);
    expect(() => checkDashboardBinding('0.0.0.0', 'short')).toThrow(/16 characters/);
    await expect(startDashboard({ queries, store, host: '0.0.0.0', port: 0 })).rejects.toThrow(/--token/);
  });

  it('with a token, answers 401 without it and accepts the bearer header or the cookie set from ?token=', async () => {
    const token = 'a-long-enough-secret-token';
    const guarded = createDashboardApp({ queries, store, token });
    expect((await guarded.request('/api/runs')).status).toBe(401);
    expect((await guarded.request('/api/runs', { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status).toBe(401);
    expect((await guarded.request('/api/runs', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const visit = await guarded.request(`/runs?status=failed&token=${token}`);
    expect(visit.status).toBe(302);
    expect(visit.headers.get('location')).toBe('/runs?status=failed');
    const cookie = visit.headers.get('set-cookie') ?? '';
    expect(cookie).toContain(`${TOKEN_COOKIE}=`);
    expect(cookie).toContain('HttpOnly');
    expect((await guarded.request('/api/runs', { headers: { cookie: cookie.split(';')[0] ?? '' } })).status).toBe(200);
  });

  it('serves the API on a real socket on 127.0.0.1 and is read-only', async () => {
    const dashboard = await startDashboard({ queries, store, port: 0 });
    try {
      expect(dashboard.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${dashboard.url}/api/runs?pageSize=1`);
      expect(((await response.json()) as RunListResponse).total).toBe(4);
      expect((await fetch(`${dashboard.url}/api/runs/${runs.baseline}`, { method: 'DELETE' })).status).toBe(404);
    } finally {
      await dashboard.close();
    }
  });
});
