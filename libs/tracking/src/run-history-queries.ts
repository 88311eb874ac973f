import { PrismaPg } from '@prisma/adapter-pg';
import { Prisma, PrismaClient } from './generated/prisma/client';
import { attemptDetails, experimentColumns, foldColumns, sweepColumns } from './json-columns';
import { toArtifact } from './tracking-store';
import {
  EXPERIMENT_STATUSES,
  TrackingError,
  type ArtifactRecord,
  type EpochMetricRecord,
  type ExperimentDetail,
  type ExperimentStatus,
  type FoldRecord,
  type StageAttemptRecord,
} from './tracking-types';

/** Columns the run list can be sorted by. */
export const RUN_SORT_FIELDS = ['createdAt', 'name', 'status', 'architecture', 'meanAccuracy', 'durationMs'] as const;
/** One of {@link RUN_SORT_FIELDS}. */
export type RunSortField = (typeof RUN_SORT_FIELDS)[number];

/** Largest page {@link RunHistoryQueries.listRuns} serves. */
export const MAX_RUN_PAGE_SIZE = 200;
/** Most runs {@link RunHistoryQueries.getRuns} loads at once (the compare view's limit). */
export const MAX_COMPARED_RUNS = 5;

/** Input of {@link RunHistoryQueries.listRuns}; callers validate user input first, this re-checks bounds. */
export interface RunListQuery {
  /** From 1. */
  page: number;
  /** 1 to {@link MAX_RUN_PAGE_SIZE}. */
  pageSize: number;
  sort: RunSortField;
  order: 'asc' | 'desc';
  /** Any of these statuses; empty or absent means all. */
  statuses?: readonly ExperimentStatus[];
  /** Any of these `model.architecture` values; empty or absent means all. */
  architectures?: readonly string[];
  /** Created at or after. */
  createdFrom?: Date;
  /** Created before. */
  createdBefore?: Date;
  /** Case-insensitive substring of the name. */
  text?: string;
  /** Only the experiments of this sweep (its id). */
  sweepId?: string;
}

/** One row of the run list: the columns a table shows, read out of the config and summary in SQL. */
export interface RunListItem {
  id: string;
  name: string;
  status: ExperimentStatus;
  architecture: string | null;
  /** Dataset source: folder root, manifest key, or `synthetic`. */
  dataset: string | null;
  imageSize: number | null;
  backend: string | null;
  meanAccuracy: number | null;
  stdAccuracy: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Finish (or now, while running) minus start; null before it started. */
  durationMs: number | null;
  error: string | null;
  /** The sweep the run belongs to, its name and the run's position in the sweep's plan; null outside sweeps. */
  sweep: { id: string; name: string; index: number | null } | null;
}

/** One page of {@link RunHistoryQueries.listRuns}. */
export interface RunListPage {
  items: RunListItem[];
  /**
   * Rows matching the filters, counted up to {@link COUNT_PAGES_AHEAD} pages past this one (at most
   * {@link RUN_COUNT_CAP}).
   */
  total: number;
  /** True when there are more matches than were counted and `total` is only a lower bound. */
  totalIsLowerBound: boolean;
  page: number;
  pageSize: number;
}

/**
 * Read-only queries over the run history for the dashboard: filtered, sorted, offset-paginated run
 * lists and whole runs. Nothing here writes. User values only ever reach SQL as bound parameters;
 * sort columns come from a fixed table of fragments.
 */
export interface RunHistoryQueries {
  listRuns(query: RunListQuery): Promise<RunListPage>;
  /** One run with all its rows, or null when the id is unknown. */
  getRun(id: string): Promise<ExperimentDetail | null>;
  /** Several runs with all their rows, in the order of `ids`; unknown ids are left out. */
  getRuns(ids: readonly string[]): Promise<ExperimentDetail[]>;
  /** The artifact row of `key` in run `experimentId`, or null: how the dashboard decides a key may be served. */
  findArtifact(experimentId: string, key: string): Promise<ArtifactRecord | null>;
  /**
   * The model prefix of fold `foldIndex` of run `experimentId` when that fold succeeded with a model,
   * else null: how the dashboard decides which model files it may serve to the browser.
   */
  findFoldModel(experimentId: string, foldIndex: number): Promise<string | null>;
  /** Every `model.architecture` that some run used, sorted. */
  listArchitectures(): Promise<string[]>;
  /** Sweeps, newest first, with how many of their planned experiments are in each state. */
  listSweeps(query: SweepListQuery): Promise<SweepPage>;
  /**
   * A sweep with every recorded experiment in full (plan order), for comparing the whole sweep; null
   * when the id is unknown. At most {@link MAX_SWEEP_COMPARED_RUNS} experiments are loaded.
   */
  getSweepRuns(id: string): Promise<SweepRuns | null>;
  close(): Promise<void>;
}

/** Most experiments of one sweep {@link RunHistoryQueries.getSweepRuns} loads in full. */
export const MAX_SWEEP_COMPARED_RUNS = 60;
/** Largest page {@link RunHistoryQueries.listSweeps} serves. */
export const MAX_SWEEP_PAGE_SIZE = 100;

/** Input of {@link RunHistoryQueries.listSweeps}. */
export interface SweepListQuery {
  /** From 1. */
  page: number;
  /** 1 to {@link MAX_SWEEP_PAGE_SIZE}. */
  pageSize: number;
}

/** One sweep of the sweep list. */
export interface SweepSummaryItem {
  id: string;
  name: string;
  workflowId: string;
  status: ExperimentStatus;
  concurrency: number;
  /** Experiments in the sweep's plan. */
  planned: number;
  /** Recorded experiments per status; planned ones without a record yet are `pending`. */
  counts: Record<ExperimentStatus | 'pending', number>;
  /** Highest mean fold accuracy among its experiments; null before any finished. */
  bestMeanAccuracy: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
}

/** One page of {@link RunHistoryQueries.listSweeps}; sweeps are few, so the count is exact. */
export interface SweepPage {
  items: SweepSummaryItem[];
  total: number;
  page: number;
  pageSize: number;
}

/** A sweep and its recorded experiments, from {@link RunHistoryQueries.getSweepRuns}. */
export interface SweepRuns {
  sweep: SweepSummaryItem & { spec: Record<string, unknown>; plan: { index: number; workflowId: string; overrides: Record<string, unknown> }[] };
  /** Recorded experiments in plan order. */
  runs: ExperimentDetail[];
  /** True when the sweep has more than {@link MAX_SWEEP_COMPARED_RUNS} recorded experiments and only the first are in `runs`. */
  truncated: boolean;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function invalid(message: string): never {
  throw new TrackingError('invalid_argument', message);
}

// Fixed fragments, so a sort field never turns into SQL text of the caller's choosing. `nullable`
// sorts put missing values last; the others must not say NULLS LAST, or PostgreSQL cannot walk the
// created_at / name indexes (their NULLS order would not match) and sorts the whole table instead.
// Architecture, mean accuracy and duration are generated columns (migration
// 20261202033000_dashboard_sort_columns) with an index per direction, so no sort reads JSON.
const SORTS: Record<RunSortField, { expression: Prisma.Sql; nullable: boolean }> = {
  createdAt: { expression: Prisma.sql`e.created_at`, nullable: false },
  name: { expression: Prisma.sql`e.name`, nullable: false },
  status: { expression: Prisma.sql`e.status`, nullable: false },
  architecture: { expression: Prisma.sql`e.architecture`, nullable: true },
  meanAccuracy: { expression: Prisma.sql`e.mean_accuracy`, nullable: true },
  // Finished runs by their stored duration; running and queued ones (no final duration) come last.
  durationMs: { expression: Prisma.sql`e.duration_ms`, nullable: true },
};

/**
 * Counting never goes past this: an exact count of a 100k-run history costs a scan of every matching
 * row on each page view, while "2,000+ runs" pages just as well (measured: `npm run bench -- dashboard`).
 */
export const RUN_COUNT_CAP = 2_000;

/**
 * Below the cap, a page counts only this many pages past itself ("275+ runs" on page 1 of 25): the
 * pager needs to know the next pages exist, not how many there are, and a narrow filter (5 % of the
 * runs) otherwise visits 2,000 rows scattered over as many heap pages for every page view.
 */
export const COUNT_PAGES_AHEAD = 10;

interface RunListRow {
  id: string;
  name: string;
  status: ExperimentStatus;
  architecture: string | null;
  dataset: string | null;
  image_size: number | null;
  backend: string | null;
  mean_accuracy: number | null;
  std_accuracy: number | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  error: string | null;
  sweep_id: string | null;
  sweep_name: string | null;
  sweep_index: number | null;
}

/** `%` and `_` match literally in the name search. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}

function requireUuid(id: string, what: string): string {
  if (typeof id !== 'string' || !UUID_PATTERN.test(id)) invalid(`${what} must be a UUID, got ${JSON.stringify(id)}`);
  return id.toLowerCase();
}

function whereClause(query: RunListQuery): Prisma.Sql {
  const conditions: Prisma.Sql[] = [];
  const statuses = query.statuses ?? [];
  for (const status of statuses) if (!EXPERIMENT_STATUSES.includes(status)) invalid(`status must be one of ${EXPERIMENT_STATUSES.join(', ')}, got ${JSON.stringify(status)}`);
  if (statuses.length > 0) conditions.push(Prisma.sql`e.status IN (${Prisma.join(statuses.map((status) => Prisma.sql`${status}::experiment_status`))})`);
  const architectures = query.architectures ?? [];
  // The generated column, so the (architecture, created_at) index answers the filter and its count.
  if (architectures.length > 0) conditions.push(Prisma.sql`e.architecture IN (${Prisma.join(architectures)})`);
  if (query.createdFrom) conditions.push(Prisma.sql`e.created_at >= ${query.createdFrom}`);
  if (query.createdBefore) conditions.push(Prisma.sql`e.created_at < ${query.createdBefore}`);
  if (query.text !== undefined && query.text.length > 0) conditions.push(Prisma.sql`e.name ILIKE ${likePattern(query.text)}`);
  if (query.sweepId !== undefined) conditions.push(Prisma.sql`e.sweep_id = ${requireUuid(query.sweepId, 'sweep id')}::uuid`);
  return conditions.length === 0 ? Prisma.empty : Prisma.sql`WHERE ${Prisma.join(conditions, ' AND ')}`;
}

/** A run and its child rows as one JSON-aggregating row (see `detailQuery`). */
interface DetailRow {
  id: string;
  name: string;
  workflow_id: string;
  status: ExperimentStatus;
  config: unknown;
  config_hash: string;
  seed: number;
  backend: string | null;
  dataset_manifest_key: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  error: string | null;
  summary: unknown;
  stage_attempts: (Omit<StageAttemptRecord, 'startedAt' | 'finishedAt'> & { startedAt: string; finishedAt: string | null })[];
  folds: (Omit<FoldRecord, 'updatedAt'> & { updatedAt: string })[];
  epoch_metrics: (Omit<EpochMetricRecord, 'recordedAt'> & { recordedAt: string })[];
  artifacts: (Omit<ArtifactRecord, 'createdAt' | 'sizeBytes'> & { createdAt: string; sizeBytes: number | string })[];
}

/**
 * Runs with all their rows in one statement: each child table is aggregated to JSON in a correlated
 * subquery over its (experiment_id, …) index. Prisma's `include` sends one query per relation (five
 * round trips for a run), and each trip waits its turn on a loaded machine — the detail call's p95.
 */
function detailQuery(ids: readonly string[]): Prisma.Sql {
  return Prisma.sql`
    SELECT e.id::text AS id, e.name, e.workflow_id, e.status::text AS status, e.config, e.config_hash, e.seed, e.backend,
           e.dataset_manifest_key, e.created_at, e.started_at, e.finished_at, e.error, e.summary,
           COALESCE((SELECT json_agg(json_build_object(
                       'id', a.id, 'experimentId', a.experiment_id, 'stage', a.stage, 'task', a.task, 'attempt', a.attempt,
                       'status', a.status, 'startedAt', a.started_at, 'finishedAt', a.finished_at, 'durationMs', a.duration_ms,
                       'error', a.error, 'workerIdentity', a.worker_identity, 'details', a.details)
                     ORDER BY a.started_at, a.task, a.attempt)
                     FROM stage_attempts a WHERE a.experiment_id = e.id), '[]'::json) AS stage_attempts,
           COALESCE((SELECT json_agg(json_build_object(
                       'id', f.id, 'experimentId', f.experiment_id, 'foldIndex', f.fold_index, 'status', f.status,
                       'trainCount', f.train_count, 'testCount', f.test_count, 'accuracy', f.accuracy,
                       'confusionMatrix', f.confusion_matrix, 'report', f.report, 'modelKey', f.model_key, 'updatedAt', f.updated_at)
                     ORDER BY f.fold_index)
                     FROM folds f WHERE f.experiment_id = e.id), '[]'::json) AS folds,
           COALESCE((SELECT json_agg(json_build_object(
                       'id', m.id, 'experimentId', m.experiment_id, 'task', m.task, 'attempt', m.attempt, 'epoch', m.epoch,
                       'trainLoss', m.train_loss, 'trainAccuracy', m.train_accuracy, 'validationLoss', m.validation_loss,
                       'validationAccuracy', m.validation_accuracy, 'learningRate', m.learning_rate, 'durationMs', m.duration_ms,
                       'imagesPerSecond', m.images_per_second, 'checkpointKey', m.checkpoint_key, 'recordedAt', m.recorded_at)
                     ORDER BY m.task, m.attempt, m.epoch)
                     FROM epoch_metrics m WHERE m.experiment_id = e.id), '[]'::json) AS epoch_metrics,
           COALESCE((SELECT json_agg(json_build_object(
                       'id', r.id, 'experimentId', r.experiment_id, 'kind', r.kind, 'key', r.key, 'sizeBytes', r.size_bytes,
                       'sha256', r.sha256, 'contentType', r.content_type, 'createdAt', r.created_at)
                     ORDER BY r.key)
                     FROM artifacts r WHERE r.experiment_id = e.id), '[]'::json) AS artifacts
    FROM experiments e
    WHERE e.id IN (${Prisma.join(ids.map((id) => Prisma.sql`${id}::uuid`))})`;
}

const toDate = (value: string): Date => new Date(value);
const toDateOrNull = (value: string | null): Date | null => (value === null ? null : new Date(value));

function toDetail(row: DetailRow): ExperimentDetail {
  const columns = experimentColumns(row);
  return {
    id: row.id,
    name: row.name,
    workflowId: row.workflow_id,
    status: row.status,
    config: columns.config,
    configHash: row.config_hash,
    seed: row.seed,
    backend: row.backend,
    datasetManifestKey: row.dataset_manifest_key,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error,
    summary: columns.summary,
    stageAttempts: row.stage_attempts.map((a) => ({
      ...a,
      details: attemptDetails(a),
      startedAt: toDate(a.startedAt),
      finishedAt: toDateOrNull(a.finishedAt),
    })),
    folds: row.folds.map((f) => ({
      ...f,
      ...foldColumns(f),
      updatedAt: toDate(f.updatedAt),
    })),
    epochMetrics: row.epoch_metrics.map((m) => ({ ...m, recordedAt: toDate(m.recordedAt) })),
    artifacts: row.artifacts.map((r) => ({ ...r, sizeBytes: Number(r.sizeBytes), createdAt: toDate(r.createdAt) })),
  };
}

interface SweepRow {
  id: string;
  name: string;
  workflow_id: string;
  status: ExperimentStatus;
  concurrency: number;
  planned: number;
  queued: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  best_mean_accuracy: number | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  error: string | null;
}

function toSweepItem(row: SweepRow): SweepSummaryItem {
  const recorded = row.queued + row.running + row.succeeded + row.failed + row.cancelled;
  return {
    id: row.id,
    name: row.name,
    workflowId: row.workflow_id,
    status: row.status,
    concurrency: row.concurrency,
    planned: row.planned,
    counts: {
      pending: Math.max(0, row.planned - recorded),
      queued: row.queued,
      running: row.running,
      succeeded: row.succeeded,
      failed: row.failed,
      cancelled: row.cancelled,
    },
    bestMeanAccuracy: row.best_mean_accuracy,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error,
  };
}

/** Sweep columns with per-status counts of its experiments (over the sweep_id index). */
function sweepSelect(where: Prisma.Sql, limit: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`
    SELECT s.id::text AS id, s.name, s.workflow_id, s.status::text AS status, s.concurrency,
           jsonb_array_length(s.plan)::int AS planned, c.queued, c.running, c.succeeded, c.failed, c.cancelled, c.best_mean_accuracy,
           s.created_at, s.started_at, s.finished_at, s.error
    FROM sweeps s
    CROSS JOIN LATERAL (
      SELECT count(*) FILTER (WHERE e.status = 'queued')::int AS queued,
             count(*) FILTER (WHERE e.status = 'running')::int AS running,
             count(*) FILTER (WHERE e.status = 'succeeded')::int AS succeeded,
             count(*) FILTER (WHERE e.status = 'failed')::int AS failed,
             count(*) FILTER (WHERE e.status = 'cancelled')::int AS cancelled,
             max(e.mean_accuracy) AS best_mean_accuracy
      FROM experiments e WHERE e.sweep_id = s.id) AS c
    ${where}
    ORDER BY s.created_at DESC, s.id DESC
    ${limit}`;
}

/**
 * Opens the read-only run-history queries on a migrated PostgreSQL database (its own small pool,
 * separate from the writers' {@link createTrackingStore}).
 */
export function createRunHistoryQueries(databaseUrl: string, options: { poolSize?: number } = {}): RunHistoryQueries {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: options.poolSize ?? 4 }) });

  // Only for a page past the cap that came back empty: how many matches there are, up to `limit`.
  const countUpTo = async (where: Prisma.Sql, limit: number): Promise<number> =>
    (await prisma.$queryRaw<{ total: number }[]>`SELECT count(*)::int AS total FROM (SELECT 1 FROM experiments e ${where} LIMIT ${limit}) AS capped`)[0]?.total ?? 0;

  const loadDetails = async (ids: readonly string[]): Promise<ExperimentDetail[]> =>
    ids.length === 0 ? [] : (await prisma.$queryRaw<DetailRow[]>(detailQuery(ids))).map(toDetail);

  return {
    async listRuns(query: RunListQuery): Promise<RunListPage> {
      if (!Number.isInteger(query.page) || query.page < 1 || query.page > 1_000_000) invalid(`page must be an integer from 1, got ${query.page}`);
      if (!Number.isInteger(query.pageSize) || query.pageSize < 1 || query.pageSize > MAX_RUN_PAGE_SIZE) {
        invalid(`pageSize must be an integer from 1 to ${MAX_RUN_PAGE_SIZE}, got ${query.pageSize}`);
      }
      const sort = SORTS[query.sort];
      if (!sort) invalid(`sort must be one of ${RUN_SORT_FIELDS.join(', ')}, got ${JSON.stringify(query.sort)}`);
      if (query.order !== 'asc' && query.order !== 'desc') invalid('order must be asc or desc');
      const direction = query.order === 'asc' ? Prisma.sql`ASC` : Prisma.sql`DESC`;
      const order = sort.nullable ? Prisma.sql`${sort.expression} ${direction} NULLS LAST` : Prisma.sql`${sort.expression} ${direction}`;
      // id breaks ties so pages never overlap or skip rows between requests.
      const tieBreak = Prisma.sql`e.id ${direction}`;
      const where = whereClause(query);
      const countLimit = Math.min(RUN_COUNT_CAP, (query.page + COUNT_PAGES_AHEAD) * query.pageSize);
      const offset = (query.page - 1) * query.pageSize;
      // Past the cap, a page with rows already proves more matches than the cap: nothing to count.
      const countPastCap = offset >= countLimit;
      // One statement: the page's ids first (index order, nothing parsed), then the columns of those 25
      // rows only — a deep OFFSET skips rows without reading their config and summary JSON — with the
      // capped count beside them. One round trip instead of two queries in parallel: on a loaded
      // machine each statement waits its turn for a core, and the page's tail latency is those waits.
      const rows = await prisma.$queryRaw<(RunListRow & { total: number })[]>`
        WITH page AS (
          SELECT e.id, row_number() OVER () AS position FROM (
            SELECT e.id FROM experiments e ${where}
            ORDER BY ${order}, ${tieBreak}
            LIMIT ${query.pageSize} OFFSET ${offset}
          ) AS e
        ),
        counted AS (
          SELECT count(*)::int AS total FROM (SELECT 1 FROM experiments e ${where} LIMIT ${countPastCap ? 0 : countLimit + 1}) AS capped
        )
        SELECT counted.total, listed.* FROM counted LEFT JOIN LATERAL (
          SELECT page.position, e.id::text AS id, e.name, e.status::text AS status, e.architecture,
                 COALESCE(e.config->'dataset'->'source'->>'root', e.config->'dataset'->'source'->>'key', e.config->'dataset'->'source'->>'kind') AS dataset,
                 (e.config->'dataset'->>'imageSize')::int AS image_size,
                 e.backend, e.mean_accuracy,
                 (e.summary->>'stdAccuracy')::float8 AS std_accuracy,
                 e.created_at, e.started_at, e.finished_at, e.error,
                 -- Live while running (the stored column is only set once finished).
                 (EXTRACT(EPOCH FROM (COALESCE(e.finished_at, now()) - e.started_at)) * 1000)::float8 AS duration_ms,
                 s.id::text AS sweep_id, s.name AS sweep_name, e.sweep_index
          FROM page JOIN experiments e ON e.id = page.id LEFT JOIN sweeps s ON s.id = e.sweep_id
        ) AS listed ON true
        ORDER BY listed.position`;
      // An empty page is one row of NULL columns carrying the count.
      const listedRows = rows.filter((row) => row.id !== null);
      let total = rows[0]?.total ?? 0;
      if (countPastCap) {
        total = listedRows.length > 0 ? countLimit + 1 : await countUpTo(where, countLimit + 1);
      }
      return {
        items: listedRows.map((row) => ({
          id: row.id,
          name: row.name,
          status: row.status,
          architecture: row.architecture,
          dataset: row.dataset,
          imageSize: row.image_size,
          backend: row.backend,
          meanAccuracy: row.mean_accuracy,
          stdAccuracy: row.std_accuracy,
          createdAt: row.created_at,
          startedAt: row.started_at,
          finishedAt: row.finished_at,
          durationMs: row.duration_ms === null ? null : Math.round(row.duration_ms),
          error: row.error,
          sweep: row.sweep_id === null ? null : { id: row.sweep_id, name: row.sweep_name ?? '', index: row.sweep_index },
        })),
        total: Math.min(total, countLimit),
        totalIsLowerBound: total > countLimit,
        page: query.page,
        pageSize: query.pageSize,
      };
    },

    async getRun(id: string): Promise<ExperimentDetail | null> {
      const [run] = await loadDetails([requireUuid(id, 'run id')]);
      return run ?? null;
    },

    async getRuns(ids: readonly string[]): Promise<ExperimentDetail[]> {
      if (ids.length > MAX_COMPARED_RUNS) invalid(`at most ${MAX_COMPARED_RUNS} runs at once, got ${ids.length}`);
      const wanted = ids.map((id) => requireUuid(id, 'run id'));
      const byId = new Map((await loadDetails(wanted)).map((run) => [run.id, run]));
      return wanted.flatMap((id) => byId.get(id) ?? []);
    },

    async findArtifact(experimentId: string, key: string): Promise<ArtifactRecord | null> {
      requireUuid(experimentId, 'run id');
      if (typeof key !== 'string' || key.length === 0 || key.length > 1024) invalid('artifact key must be 1 to 1024 characters');
      const row = await prisma.artifact.findUnique({ where: { experimentId_key: { experimentId: experimentId.toLowerCase(), key } } });
      return row ? toArtifact(row) : null;
    },

    async findFoldModel(experimentId: string, foldIndex: number): Promise<string | null> {
      const id = requireUuid(experimentId, 'run id');
      if (!Number.isInteger(foldIndex) || foldIndex < 0 || foldIndex > 99) invalid(`fold must be an integer from 0 to 99, got ${foldIndex}`);
      const row = await prisma.fold.findUnique({ where: { experimentId_foldIndex: { experimentId: id, foldIndex } }, select: { status: true, modelKey: true } });
      return row?.status === 'succeeded' ? row.modelKey : null;
    },

    async listArchitectures(): Promise<string[]> {
      // A loose index scan over the architecture index: one probe per distinct value instead of a
      // DISTINCT over every row.
      const rows = await prisma.$queryRaw<{ architecture: string }[]>`
        WITH RECURSIVE walk AS (
          (SELECT e.architecture FROM experiments e WHERE e.architecture IS NOT NULL ORDER BY e.architecture LIMIT 1)
          UNION ALL
          SELECT (SELECT e.architecture FROM experiments e WHERE e.architecture > walk.architecture ORDER BY e.architecture LIMIT 1)
          FROM walk WHERE walk.architecture IS NOT NULL
        )
        SELECT architecture FROM walk WHERE architecture IS NOT NULL`;
      return rows.map((row) => row.architecture);
    },

    async listSweeps(query: SweepListQuery): Promise<SweepPage> {
      if (!Number.isInteger(query.page) || query.page < 1 || query.page > 1_000_000) invalid(`page must be an integer from 1, got ${query.page}`);
      if (!Number.isInteger(query.pageSize) || query.pageSize < 1 || query.pageSize > MAX_SWEEP_PAGE_SIZE) {
        invalid(`pageSize must be an integer from 1 to ${MAX_SWEEP_PAGE_SIZE}, got ${query.pageSize}`);
      }
      const [rows, counted] = await Promise.all([
        prisma.$queryRaw<SweepRow[]>(sweepSelect(Prisma.empty, Prisma.sql`LIMIT ${query.pageSize} OFFSET ${(query.page - 1) * query.pageSize}`)),
        prisma.$queryRaw<{ total: number }[]>`SELECT count(*)::int AS total FROM sweeps`,
      ]);
      return { items: rows.map(toSweepItem), total: counted[0]?.total ?? 0, page: query.page, pageSize: query.pageSize };
    },

    async getSweepRuns(id: string): Promise<SweepRuns | null> {
      const sweepId = requireUuid(id, 'sweep id');
      const [sweepRows, extras, members] = await Promise.all([
        prisma.$queryRaw<SweepRow[]>(sweepSelect(Prisma.sql`WHERE s.id = ${sweepId}::uuid`, Prisma.empty)),
        prisma.$queryRaw<{ spec: unknown; plan: unknown }[]>`SELECT spec, plan FROM sweeps WHERE id = ${sweepId}::uuid`,
        prisma.$queryRaw<{ id: string }[]>`
          SELECT e.id::text AS id FROM experiments e WHERE e.sweep_id = ${sweepId}::uuid
          ORDER BY e.sweep_index NULLS LAST, e.created_at, e.id LIMIT ${MAX_SWEEP_COMPARED_RUNS + 1}`,
      ]);
      const row = sweepRows[0];
      const extra = extras[0];
      if (!row || !extra) return null;
      const ids = members.slice(0, MAX_SWEEP_COMPARED_RUNS).map((member) => member.id);
      const byId = new Map((await loadDetails(ids)).map((run) => [run.id, run]));
      return {
        sweep: {
          ...toSweepItem(row),
          ...sweepColumns({ id: sweepId, ...extra }),
        },
        runs: ids.flatMap((runId) => byId.get(runId) ?? []),
        truncated: members.length > MAX_SWEEP_COMPARED_RUNS,
      };
    },

    async close(): Promise<void> {
      await prisma.$disconnect();
    },
  };
}
