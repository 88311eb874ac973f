import { PrismaPg } from '@prisma/adapter-pg';
import { Prisma, PrismaClient } from './generated/prisma/client';
import type * as Models from './generated/prisma/models';
import { attemptDetails, experimentColumns, foldColumns } from './json-columns';
import {
  ARTIFACT_KINDS,
  ATTEMPT_STATUSES,
  EXPERIMENT_STATUSES,
  STAGE_NAMES,
  TrackingError,
  type ArtifactInput,
  type ArtifactRecord,
  type CreateExperimentInput,
  type EpochMetricRecord,
  type ExperimentDetail,
  type ExperimentPage,
  type ExperimentRecord,
  type ExperimentStatus,
  type FinishStageAttemptInput,
  type FinishedExperimentStatus,
  type FoldRecord,
  type ListExperimentsInput,
  type RecordEpochInput,
  type RecordFoldInput,
  type StageAttemptRecord,
  type StartStageAttemptInput,
  type TrackingStore,
} from './tracking-types';

/** Options of {@link createTrackingStore}. */
export interface TrackingStoreOptions {
  /**
   * Connections in the pool (default 4). On the embedded PGlite server connections take turns on
   * one backend, so more connections add no throughput there, only fairness between callers.
   */
  poolSize?: number;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ID_PREFIX_PATTERN = /^[0-9a-f-]{4,36}$/i;
const FINISHED_STATUSES: readonly FinishedExperimentStatus[] = ['succeeded', 'failed', 'cancelled'];
// Artifact rows per INSERT statement (6 parameters each, far below PostgreSQL's 65,535).
const ARTIFACT_BATCH = 200;

function invalid(message: string): never {
  throw new TrackingError('invalid_argument', message);
}

function requireUuid(value: string, what: string): string {
  if (typeof value !== 'string' || !UUID_PATTERN.test(value)) invalid(`${what} must be a UUID, got ${JSON.stringify(value)}`);
  return value.toLowerCase();
}

function requireText(value: string, what: string, maxLength = 2000): string {
  if (typeof value !== 'string' || value.trim().length === 0) invalid(`${what} must be a non-empty string, got ${JSON.stringify(value)}`);
  if (value.length > maxLength) invalid(`${what} must be at most ${maxLength} characters, got ${value.length}`);
  return value;
}

function requireInt(value: number, what: string, min: number, max = 2 ** 31 - 1): number {
  if (!Number.isInteger(value) || value < min || value > max) invalid(`${what} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

function requireNumber(value: number, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) invalid(`${what} must be a finite number, got ${value}`);
  return value;
}

function optionalNumber(value: number | null | undefined, what: string): number | null {
  return value === undefined || value === null ? null : requireNumber(value, what);
}

function requireOneOf<T extends string>(value: T, allowed: readonly T[], what: string): T {
  if (!allowed.includes(value)) invalid(`${what} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value;
}

function requireConfusionMatrix(matrix: number[][], what: string): number[][] {
  const size = matrix.length;
  const square = size > 0 && matrix.every((row) => Array.isArray(row) && row.length === size);
  if (!square || !matrix.every((row) => row.every((cell) => Number.isInteger(cell) && cell >= 0))) {
    invalid(`${what} must be a non-empty square matrix of non-negative integers`);
  }
  return matrix;
}

function json(value: unknown): Prisma.InputJsonValue {
  return value as Prisma.InputJsonValue;
}

function isKnownError(error: unknown, code: string): error is Prisma.PrismaClientKnownRequestError {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === code;
}

/** @internal Row mapper shared with the read-only run-history queries. */
export function toExperiment(row: Models.ExperimentModel): ExperimentRecord {
  const columns = experimentColumns(row);
  return {
    id: row.id,
    name: row.name,
    workflowId: row.workflowId,
    status: row.status,
    config: columns.config,
    configHash: row.configHash,
    seed: row.seed,
    backend: row.backend,
    datasetManifestKey: row.datasetManifestKey,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    error: row.error,
    summary: columns.summary,
  };
}

/** @internal Row mapper shared with the read-only run-history queries. */
export function toStageAttempt(row: Models.StageAttemptModel): StageAttemptRecord {
  return { ...row, details: attemptDetails(row) };
}

/** @internal Row mapper shared with the read-only run-history queries. */
export function toEpoch(row: Models.EpochMetricModel): EpochMetricRecord {
  return { ...row };
}

/** @internal Row mapper shared with the read-only run-history queries. */
export function toFold(row: Models.FoldModel): FoldRecord {
  return {
    ...row,
    ...foldColumns(row),
  };
}

/** @internal Row mapper shared with the read-only run-history queries. */
export function toArtifact(row: Models.ArtifactModel): ArtifactRecord {
  return { ...row, sizeBytes: Number(row.sizeBytes) };
}

/** The validated natural key of a stage attempt, (experiment, task, attempt). */
function attemptKey(input: { experimentId: string; task: string; attempt: number }): { experimentId: string; task: string; attempt: number } {
  return {
    experimentId: requireUuid(input.experimentId, 'experimentId'),
    task: requireText(input.task, 'task', 100),
    attempt: requireInt(input.attempt, 'attempt', 1),
  };
}

/**
 * Opens the run-history repository on a PostgreSQL database migrated with {@link applyMigrations}.
 * It talks to the database through the Prisma 7 client and `@prisma/adapter-pg`; connecting is
 * lazy, so this never throws for an unreachable server — the first call does.
 * @param databaseUrl `postgresql://…` connection string (Debian PostgreSQL, the embedded PGlite server, …).
 */
export function createTrackingStore(databaseUrl: string, options: TrackingStoreOptions = {}): TrackingStore {
  const poolSize = requireInt(options.poolSize ?? 4, 'poolSize', 1, 100);
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: poolSize }) });

  // Foreign key violations mean the experiment a child row points at does not exist.
  async function withExperiment<T>(experimentId: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (isKnownError(error, 'P2003')) throw new TrackingError('not_found', `experiment ${experimentId} does not exist`, { cause: error });
      throw error;
    }
  }

  async function loadExperiment(id: string): Promise<Models.ExperimentModel> {
    const row = await prisma.experiment.findUnique({ where: { id } });
    if (!row) throw new TrackingError('not_found', `experiment ${id} does not exist`);
    return row;
  }

  return {
    async createExperiment(input: CreateExperimentInput): Promise<ExperimentRecord> {
      const workflowId = requireText(input.workflowId, 'workflowId', 255);
      if (typeof input.config !== 'object' || input.config === null || Array.isArray(input.config)) invalid('config must be an object');
      const data = {
        workflowId,
        name: requireText(input.name, 'name', 200),
        config: json(input.config),
        configHash: requireText(input.configHash, 'configHash', 128),
        seed: requireInt(input.seed, 'seed', 0),
        ...(input.sweep ? { sweepId: requireUuid(input.sweep.id, 'sweep id'), sweepIndex: requireInt(input.sweep.index, 'sweep index', 0) } : {}),
      };
      let row: Models.ExperimentModel | null;
      try {
        row = await prisma.experiment.create({ data });
      } catch (error) {
        // Another call created it first (a retried activity or a concurrent client): use that row.
        if (!isKnownError(error, 'P2002')) throw error;
        row = await prisma.experiment.findUnique({ where: { workflowId } });
        if (!row) throw error;
      }
      if (row.configHash !== data.configHash) {
        throw new TrackingError(
          'conflict',
          `workflow ${workflowId} already has an experiment with config hash ${row.configHash}, not ${data.configHash}`,
        );
      }
      return toExperiment(row);
    },

    async markExperimentRunning(id: string, options: { backend?: string | null } = {}): Promise<ExperimentRecord> {
      const experimentId = requireUuid(id, 'experiment id');
      const backend = options.backend === undefined || options.backend === null ? undefined : requireText(options.backend, 'backend', 100);
      const current = await loadExperiment(experimentId);
      if (current.status !== 'queued' && current.status !== 'running') {
        throw new TrackingError('conflict', `experiment ${experimentId} already ended (${current.status}); it cannot run again`);
      }
      const row = await prisma.experiment.update({
        where: { id: experimentId },
        data: { status: 'running', startedAt: current.startedAt ?? new Date(), ...(backend === undefined ? {} : { backend }) },
      });
      return toExperiment(row);
    },

    async markExperimentFinished(id, outcome): Promise<ExperimentRecord> {
      const experimentId = requireUuid(id, 'experiment id');
      const status = requireOneOf(outcome.status, FINISHED_STATUSES, 'status');
      if (outcome.summary) requireConfusionMatrix(outcome.summary.confusionMatrix, 'summary.confusionMatrix');
      const current = await loadExperiment(experimentId);
      const row = await prisma.experiment.update({
        where: { id: experimentId },
        data: {
          status,
          finishedAt: current.finishedAt ?? new Date(),
          error: outcome.error ?? null,
          ...(outcome.summary === undefined ? {} : { summary: outcome.summary === null ? Prisma.DbNull : json(outcome.summary) }),
        },
      });
      return toExperiment(row);
    },

    async setDatasetManifest(id: string, key: string): Promise<void> {
      const experimentId = requireUuid(id, 'experiment id');
      const result = await prisma.experiment.updateMany({
        where: { id: experimentId },
        data: { datasetManifestKey: requireText(key, 'manifest key', 1024) },
      });
      if (result.count === 0) throw new TrackingError('not_found', `experiment ${experimentId} does not exist`);
    },

    async startStageAttempt(input: StartStageAttemptInput): Promise<StageAttemptRecord> {
      const key = attemptKey(input);
      const experimentId = key.experimentId;
      const stage = requireOneOf(input.stage, STAGE_NAMES, 'stage');
      const workerIdentity = requireText(input.workerIdentity, 'workerIdentity', 500);
      // The worker's clock stamps both ends of an attempt, so its duration never mixes two clocks.
      const fresh = { stage, status: 'running' as const, startedAt: new Date(), workerIdentity };
      const row = await withExperiment(experimentId, () =>
        prisma.stageAttempt.upsert({
          where: { experimentId_task_attempt: key },
          create: { ...key, ...fresh },
          update: { ...fresh, finishedAt: null, durationMs: null, error: null },
        }),
      );
      return toStageAttempt(row);
    },

    async finishStageAttempt(input: FinishStageAttemptInput): Promise<StageAttemptRecord> {
      const key = attemptKey(input);
      const status = requireOneOf(input.status, ['succeeded', 'failed'] as const, 'status');
      const current = await prisma.stageAttempt.findUnique({ where: { experimentId_task_attempt: key } });
      if (!current) {
        throw new TrackingError('not_found', `no attempt ${key.attempt} of task ${key.task} in experiment ${key.experimentId}; start it first`);
      }
      const finishedAt = current.finishedAt ?? new Date();
      const row = await prisma.stageAttempt.update({
        where: { experimentId_task_attempt: key },
        data: {
          status,
          finishedAt,
          durationMs: Math.max(0, finishedAt.getTime() - current.startedAt.getTime()),
          error: input.error ?? null,
          ...(input.details === undefined ? {} : { details: json(input.details) }),
        },
      });
      return toStageAttempt(row);
    },

    async recordEpoch(input: RecordEpochInput): Promise<EpochMetricRecord> {
      const key = {
        experimentId: requireUuid(input.experimentId, 'experimentId'),
        task: requireText(input.task, 'task', 100),
        attempt: requireInt(input.attempt, 'attempt', 1),
        epoch: requireInt(input.epoch, 'epoch', 0),
      };
      const values = {
        trainLoss: requireNumber(input.trainLoss, 'trainLoss'),
        trainAccuracy: requireNumber(input.trainAccuracy, 'trainAccuracy'),
        validationLoss: optionalNumber(input.validationLoss, 'validationLoss'),
        validationAccuracy: optionalNumber(input.validationAccuracy, 'validationAccuracy'),
        learningRate: requireNumber(input.learningRate, 'learningRate'),
        durationMs: requireInt(Math.round(input.durationMs), 'durationMs', 0),
        imagesPerSecond: requireNumber(input.imagesPerSecond, 'imagesPerSecond'),
        checkpointKey: input.checkpointKey ?? null,
        recordedAt: new Date(),
      };
      const row = await withExperiment(key.experimentId, () =>
        prisma.epochMetric.upsert({
          where: { experimentId_task_attempt_epoch: key },
          create: { ...key, ...values },
          update: values,
        }),
      );
      return toEpoch(row);
    },

    async recordFold(input: RecordFoldInput): Promise<FoldRecord> {
      const key = {
        experimentId: requireUuid(input.experimentId, 'experimentId'),
        foldIndex: requireInt(input.foldIndex, 'foldIndex', 0, 99),
      };
      const status = requireOneOf(input.status, ATTEMPT_STATUSES, 'status');
      const confusionMatrix =
        input.confusionMatrix === undefined || input.confusionMatrix === null
          ? null
          : requireConfusionMatrix(input.confusionMatrix, 'confusionMatrix');
      const values = {
        status,
        trainCount: requireInt(input.trainCount, 'trainCount', 0),
        testCount: requireInt(input.testCount, 'testCount', 0),
        accuracy: optionalNumber(input.accuracy, 'accuracy'),
        confusionMatrix: confusionMatrix === null ? Prisma.DbNull : json(confusionMatrix),
        report: input.report === undefined || input.report === null ? Prisma.DbNull : json(input.report),
        modelKey: input.modelKey ?? null,
        updatedAt: new Date(),
      };
      if (status === 'succeeded') {
        const missing = (['accuracy', 'confusionMatrix', 'report', 'modelKey'] as const).filter((field) => input[field] === undefined || input[field] === null);
        if (missing.length > 0) invalid(`fold ${key.foldIndex} succeeded but lacks ${missing.join(', ')}`);
        const total = confusionMatrix?.flat().reduce((sum, cell) => sum + cell, 0);
        if (total !== values.testCount) invalid(`fold ${key.foldIndex}: confusion matrix counts ${total} images but testCount is ${values.testCount}`);
      }
      const row = await withExperiment(key.experimentId, () =>
        prisma.fold.upsert({ where: { experimentId_foldIndex: key }, create: { ...key, ...values }, update: values }),
      );
      return toFold(row);
    },

    async recordArtifacts(id: string, artifacts: readonly ArtifactInput[]): Promise<number> {
      const experimentId = requireUuid(id, 'experimentId');
      // A key listed twice keeps its last description, as two sequential writes would.
      const byKey = new Map<string, ArtifactInput>();
      for (const artifact of artifacts) {
        const key = requireText(artifact.key, 'artifact key', 1024);
        requireOneOf(artifact.kind, ARTIFACT_KINDS, `kind of ${key}`);
        if (!/^[0-9a-f]{64}$/.test(artifact.sha256)) invalid(`sha256 of ${key} must be 64 lowercase hex digits, got ${JSON.stringify(artifact.sha256)}`);
        const size = typeof artifact.sizeBytes === 'bigint' ? artifact.sizeBytes : BigInt(requireInt(artifact.sizeBytes, `sizeBytes of ${key}`, 0, Number.MAX_SAFE_INTEGER));
        if (size < 0n) invalid(`sizeBytes of ${key} must not be negative`);
        requireText(artifact.contentType, `contentType of ${key}`, 255);
        byKey.set(key, artifact);
      }
      const unique = [...byKey.values()];
      if (unique.length === 0) return 0;
      await loadExperiment(experimentId);
      // One multi-row INSERT … ON CONFLICT per batch: a run records hundreds of shards, and one upsert
      // round trip per row costs ~10 ms on the embedded server. Column names are kept honest by the
      // schema parity test.
      const statements = [];
      for (let start = 0; start < unique.length; start += ARTIFACT_BATCH) {
        const rows = unique
          .slice(start, start + ARTIFACT_BATCH)
          .map(
            (a) =>
              Prisma.sql`(${experimentId}::uuid, ${a.kind}::"artifact_kind", ${a.key}, ${BigInt(a.sizeBytes)}::bigint, ${a.sha256}, ${a.contentType})`,
          );
        statements.push(prisma.$executeRaw`
          INSERT INTO "artifacts" ("experiment_id", "kind", "key", "size_bytes", "sha256", "content_type")
          VALUES ${Prisma.join(rows)}
          ON CONFLICT ("experiment_id", "key") DO UPDATE SET
            "kind" = EXCLUDED."kind", "size_bytes" = EXCLUDED."size_bytes",
            "sha256" = EXCLUDED."sha256", "content_type" = EXCLUDED."content_type"`);
      }
      await prisma.$transaction(statements);
      return unique.length;
    },

    async listExperiments(input: ListExperimentsInput): Promise<ExperimentPage> {
      const limit = requireInt(input.limit, 'limit', 1, 500);
      const status = input.status === undefined ? undefined : requireOneOf(input.status, EXPERIMENT_STATUSES, 'status');
      const cursor = input.cursor === undefined || input.cursor === null ? undefined : requireUuid(input.cursor, 'cursor');
      const rows = await prisma.experiment.findMany({
        where: status === undefined ? {} : { status },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: limit + 1,
        ...(cursor === undefined ? {} : { cursor: { id: cursor }, skip: 1 }),
      });
      const items = rows.slice(0, limit).map(toExperiment);
      return { items, nextCursor: rows.length > limit ? (items[items.length - 1]?.id ?? null) : null };
    },

    async latestCheckpoint(experimentId: string, task: string) {
      const row = await prisma.epochMetric.findFirst({
        where: { experimentId: requireUuid(experimentId, 'experimentId'), task: requireText(task, 'task', 100), checkpointKey: { not: null } },
        orderBy: [{ epoch: 'desc' }, { attempt: 'desc' }],
      });
      return row?.checkpointKey ? { epoch: row.epoch, attempt: row.attempt, checkpointKey: row.checkpointKey } : null;
    },

    async abandonStaleAttempts(input: { experimentId: string; task: string; beforeAttempt: number; reason: string }): Promise<number> {
      const { experimentId, task, attempt } = attemptKey({ ...input, attempt: input.beforeAttempt });
      const finishedAt = new Date();
      const stale = await prisma.stageAttempt.findMany({ where: { experimentId, task, attempt: { lt: attempt }, status: 'running' } });
      for (const row of stale) {
        // Conditional on still running, so an attempt that finished meanwhile keeps its own outcome.
        await prisma.stageAttempt.updateMany({
          where: { id: row.id, status: 'running' },
          data: { status: 'failed', finishedAt, durationMs: Math.max(0, finishedAt.getTime() - row.startedAt.getTime()), error: requireText(input.reason, 'reason', 2000) },
        });
      }
      return stale.length;
    },

    async getExperiment(idOrWorkflowId: string): Promise<ExperimentDetail | null> {
      const ref = requireText(idOrWorkflowId, 'experiment id or workflow id', 255);
      const include = {
        stageAttempts: { orderBy: [{ startedAt: 'asc' }, { task: 'asc' }, { attempt: 'asc' }] },
        folds: { orderBy: { foldIndex: 'asc' } },
        epochMetrics: { orderBy: [{ task: 'asc' }, { attempt: 'asc' }, { epoch: 'asc' }] },
        artifacts: { orderBy: { key: 'asc' } },
      } satisfies Prisma.ExperimentInclude;
      // An id match wins over a workflow id that merely looks like a UUID.
      let row = UUID_PATTERN.test(ref) ? await prisma.experiment.findUnique({ where: { id: ref.toLowerCase() }, include }) : null;
      row ??= await prisma.experiment.findUnique({ where: { workflowId: ref }, include });
      if (!row) return null;
      return {
        ...toExperiment(row),
        stageAttempts: row.stageAttempts.map(toStageAttempt),
        folds: row.folds.map(toFold),
        epochMetrics: row.epochMetrics.map(toEpoch),
        artifacts: row.artifacts.map(toArtifact),
      };
    },

    async findExperimentsByIdPrefix(prefix: string, limit = 10): Promise<ExperimentRecord[]> {
      if (typeof prefix !== 'string' || !ID_PREFIX_PATTERN.test(prefix)) {
        invalid(`id prefix must be 4 to 36 hex digits or dashes, got ${JSON.stringify(prefix)}`);
      }
      const take = requireInt(limit, 'limit', 1, 500);
      // A uuid column has no LIKE in Prisma's filters; its text form is the canonical lower-case one.
      const ids = await prisma.$queryRaw<{ id: string }[]>`
        SELECT id::text AS id FROM experiments WHERE id::text LIKE ${`${prefix.toLowerCase()}%`}
        ORDER BY created_at DESC, id DESC LIMIT ${take}`;
      if (ids.length === 0) return [];
      const rows = await prisma.experiment.findMany({ where: { id: { in: ids.map((row) => row.id) } }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
      return rows.map(toExperiment);
    },

    async countExperimentsByStatus(): Promise<Record<ExperimentStatus, number>> {
      const groups = await prisma.experiment.groupBy({ by: ['status'], _count: { _all: true } });
      const counts = Object.fromEntries(EXPERIMENT_STATUSES.map((status) => [status, 0])) as Record<ExperimentStatus, number>;
      for (const group of groups) counts[group.status] = group._count._all;
      return counts;
    },

    async close(): Promise<void> {
      await prisma.$disconnect();
    },
  };
}
