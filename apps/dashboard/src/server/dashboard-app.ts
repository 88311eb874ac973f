import { timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { serveStatic } from '@hono/node-server/serve-static';
import { zValidator } from '@hono/zod-validator';
import {
  GradCamGalleryError,
  ObjectNotFoundError,
  gradCamIndexKey,
  modelFileKey,
  parseGradCamOverlayKey,
  readGradCamGallery,
  S3ObjectStore,
  type GradCamGallery,
  type ObjectStore,
} from '@detl/storage';
import { EXPERIMENT_STATUSES, RUN_SORT_FIELDS, TrackingError, type ExperimentDetail, type RunHistoryQueries, type SweepSummaryItem } from '@detl/tracking';
import { Hono, type Context } from 'hono';
import sharp from 'sharp';
import { getCookie, setCookie } from 'hono/cookie';
import type { z } from 'zod';
import type {
  CompareResponse,
  ErrorResponse,
  FacetsResponse,
  GalleryResponse,
  GradCamJson,
  RunDetailResponse,
  RunListResponse,
  ScreeningResponse,
  SweepCompareResponse,
  SweepItemJson,
  SweepListResponse,
} from '../api-types';
import { diffConfigs } from './config-diff';
import {
  artifactQuerySchema,
  badRequestBody,
  compareQuerySchema,
  galleryImageParamSchema,
  modelFileParamSchema,
  runIdParamSchema,
  runListQuerySchema,
  sweepIdParamSchema,
  sweepListQuerySchema,
} from './query-schemas';
import { readManifestPreprocessing, ScreeningUnavailableError, type ManifestPreprocessing } from './screening';
import { DATA_B_CLASSES } from '@detl/config';

/** Cookie that carries the access token after the first `?token=` visit. */
export const TOKEN_COOKIE = 'detl_dashboard_token';

/** What the dashboard app reads from, and how it is protected. */
export interface DashboardAppOptions {
  queries: RunHistoryQueries;
  store: ObjectStore;
  /** When set, every request needs it (bearer header, cookie, or `?token=` on a page). */
  token?: string;
  /** Built client (index.html and assets); absent means the API only, with a page that says how to build. */
  clientDir?: string;
}

// Shards and checkpoints are hundreds of rows per run and never shown; the rest are what a reader opens.
const LISTED_ARTIFACT_KINDS = new Set(['grad_cam', 'figure', 'report', 'model', 'manifest']);

function artifactUrl(runId: string, key: string): string {
  return `/api/runs/${runId}/artifact?key=${encodeURIComponent(key)}`;
}

/** An overlay artifact with what its key says (the storage layout's overlay key: true class, image, predicted class). */
function parseGradCam(runId: string, key: string): GradCamJson {
  const overlay = parseGradCamOverlayKey(key);
  return {
    key,
    url: artifactUrl(runId, key),
    // A key outside the layout (none is written so) shows whole rather than cut up by guesswork.
    image: overlay?.imageId ?? key,
    trueClass: overlay?.trueClass ?? 'unknown',
    predictedClass: overlay?.predictedClass ?? null,
  };
}

const iso = (date: Date | null): string | null => (date === null ? null : date.toISOString());

function toSweepJson(sweep: SweepSummaryItem): SweepItemJson {
  return { ...sweep, createdAt: sweep.createdAt.toISOString(), startedAt: iso(sweep.startedAt), finishedAt: iso(sweep.finishedAt) };
}

/** The config paths whose values differ between runs, as the compare views show them. */
function configDifferences(runs: readonly ExperimentDetail[]): CompareResponse['configDiff'] {
  return diffConfigs(runs.map((run) => run.config)).map((difference) => ({
    path: difference.path,
    values: difference.values.map((value) => value ?? null),
  }));
}

/** The wire form of one run. */
export function toRunDetailJson(run: ExperimentDetail): RunDetailResponse {
  return {
    id: run.id,
    name: run.name,
    workflowId: run.workflowId,
    status: run.status,
    config: run.config,
    configHash: run.configHash,
    seed: run.seed,
    backend: run.backend,
    datasetManifestKey: run.datasetManifestKey,
    createdAt: run.createdAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    error: run.error,
    summary: run.summary,
    stageAttempts: run.stageAttempts.map((attempt) => ({
      stage: attempt.stage,
      task: attempt.task,
      attempt: attempt.attempt,
      status: attempt.status,
      startedAt: attempt.startedAt.toISOString(),
      finishedAt: iso(attempt.finishedAt),
      durationMs: attempt.durationMs,
      error: attempt.error,
      workerIdentity: attempt.workerIdentity,
      details: attempt.details,
    })),
    folds: run.folds.map((fold) => ({
      foldIndex: fold.foldIndex,
      status: fold.status,
      trainCount: fold.trainCount,
      testCount: fold.testCount,
      accuracy: fold.accuracy,
      confusionMatrix: fold.confusionMatrix,
    })),
    epochMetrics: run.epochMetrics.map((epoch) => ({
      task: epoch.task,
      attempt: epoch.attempt,
      epoch: epoch.epoch,
      trainLoss: epoch.trainLoss,
      trainAccuracy: epoch.trainAccuracy,
      validationLoss: epoch.validationLoss,
      validationAccuracy: epoch.validationAccuracy,
      learningRate: epoch.learningRate,
      durationMs: epoch.durationMs,
    })),
    artifacts: run.artifacts
      .filter((artifact) => LISTED_ARTIFACT_KINDS.has(artifact.kind))
      .map((artifact) => ({
        kind: artifact.kind,
        key: artifact.key,
        sizeBytes: artifact.sizeBytes,
        contentType: artifact.contentType,
        sha256: artifact.sha256,
        url: artifactUrl(run.id, artifact.key),
      })),
    gradCams: run.artifacts.filter((artifact) => artifact.kind === 'grad_cam').map((artifact) => parseGradCam(run.id, artifact.key)),
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A validator hook that answers 400 naming the parameter. */
function rejectInvalid(result: { success: boolean; error?: z.core.$ZodError }, c: Context) {
  if (!result.success && result.error) return c.json(badRequestBody(result.error), 400);
  return undefined;
}

/** Streams the object when the store is S3 (large models never sit in memory whole); reads it otherwise. */
async function objectBody(store: ObjectStore, key: string): Promise<ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>> {
  if (store instanceof S3ObjectStore) {
    const response = await store.client.send(new GetObjectCommand({ Bucket: store.bucket, Key: key })).catch((error: unknown) => {
      if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) throw new ObjectNotFoundError(key);
      throw error;
    });
    if (!response.Body) throw new ObjectNotFoundError(key);
    return Readable.toWeb(response.Body as Readable) as ReadableStream<Uint8Array>;
  }
  return (await store.getObject(key)) as Uint8Array<ArrayBuffer>;
}

/** One image's grey pixels out of a shard (`count × size × size` bytes): a ranged GET on S3, a slice otherwise. */
async function shardImage(store: ObjectStore, key: string, index: number, size: number): Promise<Uint8Array> {
  const plane = size * size;
  const start = index * plane;
  if (store instanceof S3ObjectStore) {
    const response = await store.client
      .send(new GetObjectCommand({ Bucket: store.bucket, Key: key, Range: `bytes=${start}-${start + plane - 1}` }))
      .catch((error: unknown) => {
        if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) throw new ObjectNotFoundError(key);
        throw error;
      });
    const bytes = await response.Body?.transformToByteArray();
    if (!bytes || bytes.length !== plane) throw new ObjectNotFoundError(key);
    return bytes;
  }
  const bytes = (await store.getObject(key)).subarray(start, start + plane);
  if (bytes.length !== plane) throw new ObjectNotFoundError(key);
  return bytes;
}

/** A grey PNG of raw pixels. */
async function greyPng(pixels: Uint8Array, size: number): Promise<Uint8Array<ArrayBuffer>> {
  const png = await sharp(pixels, { raw: { width: size, height: size, channels: 1 } }).png().toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength) as Uint8Array<ArrayBuffer>;
}

const MISSING_CLIENT_PAGE = `<!doctype html><meta charset="utf-8"><title>detl dashboard</title>
<p>The dashboard's browser bundle is not built. Run <code>npx nx run @detl/dashboard:build</code> (or start it with <code>detl dashboard</code>, which builds it), then reload.</p>`;

/**
 * The dashboard's HTTP app: a read-only JSON API over the run history and the run's artifacts, and
 * the built React client. Every query parameter is validated; a bad one gets 400 with the field named.
 */
export function createDashboardApp(options: DashboardAppOptions): Hono {
  const { queries, store, token } = options;
  const app = new Hono();
  // Manifests are content-addressed (immutable), and can be megabytes: parse each once.
  const manifestCache = new Map<string, Promise<ManifestPreprocessing>>();

  app.onError((error, c) => {
    if (error instanceof TrackingError && error.code === 'invalid_argument') return c.json<ErrorResponse>({ error: error.message }, 400);
    if (error instanceof TrackingError && error.code === 'not_found') return c.json<ErrorResponse>({ error: error.message }, 404);
    console.error('dashboard: request failed', error);
    return c.json<ErrorResponse>({ error: 'the dashboard could not read the run history; see the server log and check that PostgreSQL and S3 are reachable' }, 500);
  });

  if (token !== undefined) {
    app.use('*', async (c, next) => {
      const queryToken = c.req.query('token');
      if (queryToken !== undefined && sameSecret(queryToken, token) && !c.req.path.startsWith('/api/')) {
        // Exchange the link's token for a cookie and drop it from the address bar and history.
        setCookie(c, TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
        const url = new URL(c.req.url);
        url.searchParams.delete('token');
        return c.redirect(`${url.pathname}${url.search}`, 302);
      }
      const bearer = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1];
      const cookie = getCookie(c, TOKEN_COOKIE);
      if ((bearer !== undefined && sameSecret(bearer, token)) || (cookie !== undefined && sameSecret(cookie, token))) return next();
      return c.json<ErrorResponse>(
        { error: 'this dashboard needs its access token: open the address `detl dashboard` printed (it ends in ?token=…), or send Authorization: Bearer <token>' },
        401,
      );
    });
  }

  app.get('/api/health', (c) => c.json({ ok: true }));

  app.get('/api/facets', async (c) =>
    c.json<FacetsResponse>({ statuses: [...EXPERIMENT_STATUSES], architectures: await queries.listArchitectures(), sortFields: [...RUN_SORT_FIELDS] }),
  );

  app.get('/api/runs', zValidator('query', runListQuerySchema, rejectInvalid), async (c) => {
    const query = c.req.valid('query');
    const page = await queries.listRuns({
      page: query.page,
      pageSize: query.pageSize,
      sort: query.sort,
      order: query.order,
      ...(query.status ? { statuses: query.status } : {}),
      ...(query.architecture ? { architectures: query.architecture } : {}),
      ...(query.from ? { createdFrom: query.from } : {}),
      // A date without a time means the whole day: `to=2026-12-01` includes runs of that day.
      ...(query.to ? { createdBefore: c.req.query('to')?.length === 10 ? new Date(query.to.getTime() + 86_400_000) : query.to } : {}),
      ...(query.q ? { text: query.q.trim() } : {}),
      ...(query.sweep ? { sweepId: query.sweep } : {}),
    });
    return c.json<RunListResponse>({
      ...page,
      items: page.items.map((item) => ({
        ...item,
        createdAt: item.createdAt.toISOString(),
        startedAt: iso(item.startedAt),
        finishedAt: iso(item.finishedAt),
      })),
    });
  });

  app.get('/api/runs/:id', zValidator('param', runIdParamSchema, rejectInvalid), async (c) => {
    const { id } = c.req.valid('param');
    const run = await queries.getRun(id);
    if (!run) return c.json<ErrorResponse>({ error: `no run ${id}; it may have been recorded in another database — see the runs list` }, 404);
    return c.json<RunDetailResponse>(toRunDetailJson(run));
  });

  app.get(
    '/api/runs/:id/artifact',
    zValidator('param', runIdParamSchema, rejectInvalid),
    zValidator('query', artifactQuerySchema, rejectInvalid),
    async (c) => {
      const { id } = c.req.valid('param');
      const { key } = c.req.valid('query');
      // Only keys the run itself recorded: the bucket holds every run's objects and more.
      const artifact = await queries.findArtifact(id, key);
      if (!artifact) return c.json<ErrorResponse>({ error: `${key} is not an artifact of run ${id}` }, 404);
      if (c.req.header('if-none-match') === `"${artifact.sha256}"`) return c.body(null, 304);
      try {
        const body = await objectBody(store, key);
        return c.body(body, 200, {
          'content-type': artifact.contentType,
          'content-length': String(artifact.sizeBytes),
          etag: `"${artifact.sha256}"`,
          'cache-control': 'private, max-age=3600',
          'x-content-type-options': 'nosniff',
          // An artifact is data, never a page of this origin: no scripts even if one claims to be HTML.
          'content-security-policy': "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
        });
      } catch (error) {
        if (error instanceof ObjectNotFoundError) {
          return c.json<ErrorResponse>({ error: `${key} is recorded for run ${id} but missing from bucket ${store.bucket}; was the bucket cleaned?` }, 404);
        }
        throw error;
      }
    },
  );

  app.get('/api/compare', zValidator('query', compareQuerySchema, rejectInvalid), async (c) => {
    const { ids } = c.req.valid('query');
    const runs = await queries.getRuns(ids);
    const missing = ids.filter((id) => !runs.some((run) => run.id === id.toLowerCase()));
    if (missing.length > 0) return c.json<ErrorResponse>({ error: `no run ${missing.join(', ')}`, field: 'ids' }, 404);
    return c.json<CompareResponse>({ runs: runs.map(toRunDetailJson), configDiff: configDifferences(runs) });
  });

  app.get('/api/sweeps', zValidator('query', sweepListQuerySchema, rejectInvalid), async (c) => {
    const page = await queries.listSweeps(c.req.valid('query'));
    return c.json<SweepListResponse>({ ...page, items: page.items.map(toSweepJson) });
  });

  app.get('/api/sweeps/:id/compare', zValidator('param', sweepIdParamSchema, rejectInvalid), async (c) => {
    const { id } = c.req.valid('param');
    const found = await queries.getSweepRuns(id);
    if (!found) return c.json<ErrorResponse>({ error: `no sweep ${id}; see the sweeps list` }, 404);
    return c.json<SweepCompareResponse>({
      sweep: { ...toSweepJson(found.sweep), spec: found.sweep.spec, plan: found.sweep.plan },
      runs: found.runs.map(toRunDetailJson),
      // Only the paths the sweep varies (and whatever else differs between its experiments).
      configDiff: found.runs.length >= 2 ? configDifferences(found.runs) : [],
      truncated: found.truncated,
    });
  });

  /** The run's gallery index, when the run recorded one as a report artifact (only then is it read). */
  async function galleryOf(runId: string): Promise<GradCamGallery | null> {
    const run = await queries.getRun(runId);
    if (!run) return null;
    const indexKey = gradCamIndexKey(run.id);
    if (!run.artifacts.some((artifact) => artifact.key === indexKey)) return null;
    return readGradCamGallery(store, run.id);
  }

  app.get('/api/runs/:id/gallery', zValidator('param', runIdParamSchema, rejectInvalid), async (c) => {
    const { id } = c.req.valid('param');
    const run = await queries.getRun(id);
    if (!run) return c.json<ErrorResponse>({ error: `no run ${id}; see the runs list` }, 404);
    let gallery: GradCamGallery | null;
    try {
      gallery = await galleryOf(run.id);
    } catch (error) {
      if (error instanceof GradCamGalleryError) return c.json<ErrorResponse>({ error: error.message }, 502);
      throw error;
    }
    if (!gallery) {
      // Older runs: the overlay keys name the true and predicted class, nothing more.
      return c.json<GalleryResponse>({ recorded: false, classes: run.summary?.classes ?? [...DATA_B_CLASSES], pointingGameRate: null, entries: [] });
    }
    const recorded = new Set(run.artifacts.map((artifact) => artifact.key));
    return c.json<GalleryResponse>({
      recorded: true,
      classes: gallery.classes,
      pointingGameRate: gallery.pointingGameRate,
      entries: gallery.overlays
        .map((entry, index) => ({ entry, index }))
        .filter(({ entry }) => recorded.has(entry.overlayKey))
        .map(({ entry, index }) => ({
          overlayUrl: artifactUrl(run.id, entry.overlayKey),
          imageUrl: `/api/runs/${run.id}/gallery/${index}/image`,
          imageId: entry.imageId,
          trueClass: entry.trueClass,
          predictedClass: entry.predictedClass,
          probability: entry.probability,
          fold: entry.fold,
        })),
    });
  });

  app.get('/api/runs/:id/gallery/:entry/image', zValidator('param', galleryImageParamSchema, rejectInvalid), async (c) => {
    const { id, entry } = c.req.valid('param');
    const run = await queries.getRun(id);
    const gallery = run ? await galleryOf(run.id) : null;
    const item = gallery?.overlays[entry];
    if (!run || !gallery || !item) return c.json<ErrorResponse>({ error: `run ${id} has no Grad-CAM gallery entry ${entry}` }, 404);
    try {
      const { imageSize } = await readManifestPreprocessing(store, run.datasetManifestKey, manifestCache);
      // The shard and position come from the run's own gallery, never from the request.
      const pixels = await shardImage(store, item.imageKey, item.imageIndex, imageSize);
      return c.body(await greyPng(pixels, imageSize), 200, {
        'content-type': 'image/png',
        // Shards are content-addressed: the same entry is always the same image.
        'cache-control': 'private, max-age=86400',
        'x-content-type-options': 'nosniff',
      });
    } catch (error) {
      if (error instanceof ScreeningUnavailableError) return c.json<ErrorResponse>({ error: `run ${id}: ${error.message}` }, 404);
      if (error instanceof ObjectNotFoundError) return c.json<ErrorResponse>({ error: `${item.imageKey} is missing from bucket ${store.bucket}` }, 404);
      throw error;
    }
  });

  app.get('/api/runs/:id/screening', zValidator('param', runIdParamSchema, rejectInvalid), async (c) => {
    const { id } = c.req.valid('param');
    const run = await queries.getRun(id);
    if (!run) return c.json<ErrorResponse>({ error: `no run ${id}; see the runs list` }, 404);
    const folds = run.folds.filter((fold) => fold.status === 'succeeded' && fold.modelKey !== null);
    if (folds.length === 0) {
      return c.json<ErrorResponse>({ error: `run ${id} (${run.status}) has no trained fold model yet, so it cannot screen images; pick a succeeded run` }, 409);
    }
    try {
      const preprocessing = await readManifestPreprocessing(store, run.datasetManifestKey, manifestCache);
      return c.json<ScreeningResponse>({
        runId: run.id,
        classes: run.summary?.classes ?? [...DATA_B_CLASSES],
        preprocessing,
        models: folds.map((fold) => ({ fold: fold.foldIndex, modelUrl: `/api/runs/${run.id}/models/${fold.foldIndex}/model.json` })),
        ensemble: 'mean of probabilities',
        testTimeFlip: run.config.evaluation.testTimeFlip,
        gradCamMethod: run.config.gradCam.method,
      });
    } catch (error) {
      if (error instanceof ScreeningUnavailableError) return c.json<ErrorResponse>({ error: `run ${id}: ${error.message}` }, 409);
      throw error;
    }
  });

  app.get('/api/runs/:id/models/:fold/:file', zValidator('param', modelFileParamSchema, rejectInvalid), async (c) => {
    const { id, fold, file } = c.req.valid('param');
    // Only the model of a fold row of this run: the bucket holds every run's objects and more.
    const prefix = await queries.findFoldModel(id, fold);
    if (prefix === null) return c.json<ErrorResponse>({ error: `run ${id} has no trained model for fold ${fold}` }, 404);
    const key = modelFileKey(prefix, file);
    try {
      const body = await objectBody(store, key);
      return c.body(body, 200, {
        'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        // A fold's final model is written once; the browser may keep it while the page is open.
        'cache-control': 'private, max-age=3600',
        'x-content-type-options': 'nosniff',
        'content-security-policy': "sandbox; default-src 'none'",
      });
    } catch (error) {
      if (error instanceof ObjectNotFoundError) {
        return c.json<ErrorResponse>({ error: `${key} is recorded as fold ${fold}'s model of run ${id} but missing from bucket ${store.bucket}` }, 404);
      }
      throw error;
    }
  });

  app.all('/api/*', (c) => c.json<ErrorResponse>({ error: `no API route ${c.req.method} ${c.req.path}` }, 404));

  const clientDir = options.clientDir;
  if (clientDir !== undefined && existsSync(path.join(clientDir, 'index.html'))) {
    app.use('/assets/*', serveStatic({ root: clientDir }));
    // Every other path is a client route (/runs/…, /compare): the app reads the address itself.
    app.get('*', async (c) => c.html(await readFile(path.join(clientDir, 'index.html'), 'utf8')));
  } else {
    app.get('*', (c) => c.html(MISSING_CLIENT_PAGE, 503));
  }
  return app;
}
