import { PrismaPg } from '@prisma/adapter-pg';
import { Prisma, PrismaClient } from './generated/prisma/client';
import { toArtifact, toEpoch, toExperiment, toFold, toStageAttempt } from './tracking-store';
import {
  EXPERIMENT_STATUSES,
  TrackingError,
  type ArtifactRecord,
  type ExperimentDetail,
  type ExperimentStatus,
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
}

/** One page of {@link RunHistoryQueries.listRuns}. */
export interface RunListPage {
  items: RunListItem[];
  /** Rows matching the filters, over all pages, counted up to {@link RUN_COUNT_CAP}. */
  total: number;
  /** True when there are more than {@link RUN_COUNT_CAP} matches and `total` is only the cap. */
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
  /** Every `model.architecture` that some run used, sorted. */
  listArchitectures(): Promise<string[]>;
  close(): Promise<void>;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function invalid(message: string): never {
  throw new TrackingError('invalid_argument', message);
}

// Fixed fragments, so a sort field never turns into SQL text of the caller's choosing. `nullable`
// sorts put missing values last; the others must not say NULLS LAST, or PostgreSQL cannot walk the
// created_at / name indexes (their NULLS order would not match) and sorts the whole table instead.
const SORTS: Record<RunSortField, { expression: Prisma.Sql; nullable: boolean }> = {
  createdAt: { expression: Prisma.sql`e.created_at`, nullable: false },
  name: { expression: Prisma.sql`e.name`, nullable: false },
  status: { expression: Prisma.sql`e.status`, nullable: false },
  architecture: { expression: Prisma.sql`(e.config->'model'->>'architecture')`, nullable: true },
  meanAccuracy: { expression: Prisma.sql`((e.summary->>'meanAccuracy')::float8)`, nullable: true },
  durationMs: { expression: Prisma.sql`(COALESCE(e.finished_at, now()) - e.started_at)`, nullable: true },
};

/**
 * Counting stops here: an exact count of a 100k-run history costs a scan of every matching row on
 * each page view, while "2,000+ runs" pages just as well (measured: `npm run bench -- dashboard`).
 */
export const RUN_COUNT_CAP = 2_000;

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
}

/** `%` and `_` match literally in the name search. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}

function whereClause(query: RunListQuery): Prisma.Sql {
  const conditions: Prisma.Sql[] = [];
  const statuses = query.statuses ?? [];
  for (const status of statuses) if (!EXPERIMENT_STATUSES.includes(status)) invalid(`status must be one of ${EXPERIMENT_STATUSES.join(', ')}, got ${JSON.stringify(status)}`);
  if (statuses.length > 0) conditions.push(Prisma.sql`e.status IN (${Prisma.join(statuses.map((status) => Prisma.sql`${status}::experiment_status`))})`);
  const architectures = query.architectures ?? [];
  // Containment, so the GIN index on config answers it instead of a scan that parses every config.
  if (architectures.length > 0) {
    const contains = architectures.map((architecture) => Prisma.sql`e.config @> ${JSON.stringify({ model: { architecture } })}::jsonb`);
    conditions.push(Prisma.sql`(${Prisma.join(contains, ' OR ')})`);
  }
  if (query.createdFrom) conditions.push(Prisma.sql`e.created_at >= ${query.createdFrom}`);
  if (query.createdBefore) conditions.push(Prisma.sql`e.created_at < ${query.createdBefore}`);
  if (query.text !== undefined && query.text.length > 0) conditions.push(Prisma.sql`e.name ILIKE ${likePattern(query.text)}`);
  return conditions.length === 0 ? Prisma.empty : Prisma.sql`WHERE ${Prisma.join(conditions, ' AND ')}`;
}

/**
 * Opens the read-only run-history queries on a migrated PostgreSQL database (its own small pool,
 * separate from the writers' {@link createTrackingStore}).
 */
export function createRunHistoryQueries(databaseUrl: string, options: { poolSize?: number } = {}): RunHistoryQueries {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: options.poolSize ?? 4 }) });
  const include = {
    stageAttempts: { orderBy: [{ startedAt: 'asc' }, { task: 'asc' }, { attempt: 'asc' }] },
    folds: { orderBy: { foldIndex: 'asc' } },
    epochMetrics: { orderBy: [{ task: 'asc' }, { attempt: 'asc' }, { epoch: 'asc' }] },
    artifacts: { orderBy: { key: 'asc' } },
  } satisfies Prisma.ExperimentInclude;
  type Row = Prisma.ExperimentGetPayload<{ include: typeof include }>;
  const toDetail = (row: Row): ExperimentDetail => ({
    ...toExperiment(row),
    stageAttempts: row.stageAttempts.map(toStageAttempt),
    folds: row.folds.map(toFold),
    epochMetrics: row.epochMetrics.map(toEpoch),
    artifacts: row.artifacts.map(toArtifact),
  });

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
      const [rows, counted] = await Promise.all([
        // The page's ids first (index order, nothing parsed), then the columns of those 25 rows only:
        // a deep OFFSET then skips rows without reading their config and summary JSON.
        prisma.$queryRaw<RunListRow[]>`
          WITH page AS (
            SELECT e.id, row_number() OVER () AS position FROM (
              SELECT e.id FROM experiments e ${where}
              ORDER BY ${order}, ${tieBreak}
              LIMIT ${query.pageSize} OFFSET ${(query.page - 1) * query.pageSize}
            ) AS e
          )
          SELECT e.id::text AS id, e.name, e.status::text AS status,
                 e.config->'model'->>'architecture' AS architecture,
                 COALESCE(e.config->'dataset'->'source'->>'root', e.config->'dataset'->'source'->>'key', e.config->'dataset'->'source'->>'kind') AS dataset,
                 (e.config->'dataset'->>'imageSize')::int AS image_size,
                 e.backend,
                 (e.summary->>'meanAccuracy')::float8 AS mean_accuracy,
                 (e.summary->>'stdAccuracy')::float8 AS std_accuracy,
                 e.created_at, e.started_at, e.finished_at, e.error,
                 (EXTRACT(EPOCH FROM (COALESCE(e.finished_at, now()) - e.started_at)) * 1000)::float8 AS duration_ms
          FROM page JOIN experiments e ON e.id = page.id
          ORDER BY page.position`,
        prisma.$queryRaw<{ total: number }[]>`SELECT count(*)::int AS total FROM (SELECT 1 FROM experiments e ${where} LIMIT ${RUN_COUNT_CAP + 1}) AS capped`,
      ]);
      return {
        items: rows.map((row) => ({
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
        })),
        total: Math.min(counted[0]?.total ?? 0, RUN_COUNT_CAP),
        totalIsLowerBound: (counted[0]?.total ?? 0) > RUN_COUNT_CAP,
        page: query.page,
        pageSize: query.pageSize,
      };
    },

    async getRun(id: string): Promise<ExperimentDetail | null> {
      if (!UUID_PATTERN.test(id)) invalid(`run id must be a UUID, got ${JSON.stringify(id)}`);
      const row = await prisma.experiment.findUnique({ where: { id: id.toLowerCase() }, include });
      return row ? toDetail(row) : null;
    },

    async getRuns(ids: readonly string[]): Promise<ExperimentDetail[]> {
      if (ids.length > MAX_COMPARED_RUNS) invalid(`at most ${MAX_COMPARED_RUNS} runs at once, got ${ids.length}`);
      for (const id of ids) if (!UUID_PATTERN.test(id)) invalid(`run id must be a UUID, got ${JSON.stringify(id)}`);
      const wanted = ids.map((id) => id.toLowerCase());
      const rows = await prisma.experiment.findMany({ where: { id: { in: wanted } }, include });
      const byId = new Map(rows.map((row) => [row.id, toDetail(row)]));
      return wanted.flatMap((id) => byId.get(id) ?? []);
    },

    async findArtifact(experimentId: string, key: string): Promise<ArtifactRecord | null> {
      if (!UUID_PATTERN.test(experimentId)) invalid(`run id must be a UUID, got ${JSON.stringify(experimentId)}`);
      if (typeof key !== 'string' || key.length === 0 || key.length > 1024) invalid('artifact key must be 1 to 1024 characters');
      const row = await prisma.artifact.findUnique({ where: { experimentId_key: { experimentId: experimentId.toLowerCase(), key } } });
      return row ? toArtifact(row) : null;
    },

    async listArchitectures(): Promise<string[]> {
      const rows = await prisma.$queryRaw<{ architecture: string }[]>`
        SELECT DISTINCT e.config->'model'->>'architecture' AS architecture FROM experiments e
        WHERE e.config->'model'->>'architecture' IS NOT NULL ORDER BY 1`;
      return rows.map((row) => row.architecture);
    },

    async close(): Promise<void> {
      await prisma.$disconnect();
    },
  };
}
