import { PrismaPg } from '@prisma/adapter-pg';
import { Prisma, PrismaClient } from './generated/prisma/client';
import type * as Models from './generated/prisma/models';
import { experimentColumns, sweepColumns } from './json-columns';
import type { SweepPlanEntry } from './json-shapes';
import { TrackingError, type ExperimentStatus, type FinishedExperimentStatus, type ResultSummary } from './tracking-types';

// One planned experiment of a sweep: its schema and type are in json-shapes.ts.
export type { SweepPlanEntry };

/** One sweep row. */
export interface SweepRecord {
  id: string;
  name: string;
  workflowId: string;
  status: ExperimentStatus;
  spec: Record<string, unknown>;
  plan: SweepPlanEntry[];
  concurrency: number;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
}

/** One experiment of a sweep as its status shows it; `pending` when its workflow has not recorded it yet. */
export interface SweepExperimentRow {
  index: number;
  workflowId: string;
  overrides: Record<string, unknown>;
  experimentId: string | null;
  status: ExperimentStatus | 'pending';
  summary: ResultSummary | null;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Tasks with at least one stage attempt (`sample`, `pretrain`, `fold-0`, …): a reused pretraining has none. */
  tasks: string[];
  /** `fineTune.freeze` of its configuration (`scratch` pretrains nothing); null before it is recorded. */
  freeze: string | null;
}

/** A sweep with its experiments, in plan order. */
export interface SweepDetail extends SweepRecord {
  experiments: SweepExperimentRow[];
}

/** A sweep in a list, with how many of its experiments are in each state. */
export interface SweepListItem extends SweepRecord {
  counts: Record<ExperimentStatus | 'pending', number>;
}

/** Input of {@link SweepStore.registerSweep}. */
export interface RegisterSweepInput {
  id: string;
  name: string;
  workflowId: string;
  spec: Record<string, unknown>;
  plan: SweepPlanEntry[];
  concurrency: number;
}

/** Sweeps in PostgreSQL: the `sweeps` table and the experiments linked to it. */
export interface SweepStore {
  /** Creates the sweep row, or returns the existing one of the same id (a retried activity). */
  registerSweep(input: RegisterSweepInput): Promise<SweepRecord>;
  markSweepRunning(id: string): Promise<void>;
  /** Records how the sweep ended; an already finished sweep keeps its first outcome. */
  finishSweep(id: string, outcome: { status: FinishedExperimentStatus; error?: string | null }): Promise<void>;
  /**
   * The sweep by id, workflow id or a unique id prefix (at least 4 characters).
   * @throws TrackingError `conflict` when the prefix matches several sweeps (the message lists them).
   */
  getSweep(ref: string): Promise<SweepDetail | null>;
  /** Sweeps, newest first. */
  listSweeps(options?: { limit?: number }): Promise<SweepListItem[]>;
  close(): Promise<void>;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function toSweep(row: Models.SweepModel): SweepRecord {
  return {
    id: row.id,
    name: row.name,
    workflowId: row.workflowId,
    status: row.status,
    ...sweepColumns(row),
    concurrency: row.concurrency,
    createdAt: row.createdAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    error: row.error,
  };
}

/**
 * Opens the sweep repository (same database as the tracking store, migrated with `applyMigrations`).
 * @param databaseUrl `postgresql://…` connection string.
 */
export function createSweepStore(databaseUrl: string, options: { poolSize?: number } = {}): SweepStore {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: options.poolSize ?? 2 }) });

  async function detail(row: Models.SweepModel): Promise<SweepDetail> {
    const sweep = toSweep(row);
    const experiments = await prisma.experiment.findMany({
      where: { sweepId: row.id },
      include: { stageAttempts: { select: { task: true } } },
    });
    const byIndex = new Map(experiments.map((experiment) => [experiment.sweepIndex, experiment]));
    return {
      ...sweep,
      experiments: sweep.plan.map((entry) => {
        const experiment = byIndex.get(entry.index);
        const columns = experiment && experimentColumns(experiment);
        return {
          index: entry.index,
          workflowId: entry.workflowId,
          overrides: entry.overrides,
          experimentId: experiment?.id ?? null,
          status: experiment?.status ?? 'pending',
          summary: columns?.summary ?? null,
          error: experiment?.error ?? null,
          startedAt: experiment?.startedAt ?? null,
          finishedAt: experiment?.finishedAt ?? null,
          tasks: [...new Set(experiment?.stageAttempts.map((attempt) => attempt.task) ?? [])].sort(),
          freeze: columns?.config.fineTune.freeze ?? null,
        };
      }),
    };
  }

  return {
    async registerSweep(input) {
      if (!UUID_PATTERN.test(input.id)) throw new TrackingError('invalid_argument', `sweep id must be a UUID, got ${JSON.stringify(input.id)}`);
      try {
        return toSweep(
          await prisma.sweep.create({
            data: {
              id: input.id,
              name: input.name,
              workflowId: input.workflowId,
              spec: input.spec as Prisma.InputJsonValue,
              plan: input.plan as unknown as Prisma.InputJsonValue,
              concurrency: input.concurrency,
            },
          }),
        );
      } catch (error) {
        if (!(error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002')) throw error;
        const existing = await prisma.sweep.findUnique({ where: { id: input.id } });
        if (!existing) throw error;
        return toSweep(existing);
      }
    },

    async markSweepRunning(id) {
      await prisma.sweep.updateMany({ where: { id, status: 'queued' }, data: { status: 'running', startedAt: new Date() } });
    },

    async finishSweep(id, outcome) {
      await prisma.sweep.updateMany({
        where: { id, status: { in: ['queued', 'running'] } },
        data: { status: outcome.status, error: outcome.error ?? null, finishedAt: new Date() },
      });
    },

    async getSweep(ref) {
      const text = ref.trim();
      const exact = UUID_PATTERN.test(text)
        ? await prisma.sweep.findUnique({ where: { id: text.toLowerCase() } })
        : await prisma.sweep.findUnique({ where: { workflowId: text } });
      if (exact) return detail(exact);
      if (text.length < 4 || !/^[0-9a-f-]+$/i.test(text)) return null;
      const candidates = await prisma.$queryRaw<Array<{ id: string; name: string }>>`SELECT id::text AS id, name FROM sweeps WHERE id::text LIKE ${`${text.toLowerCase()}%`} ORDER BY created_at DESC LIMIT 11`;
      if (candidates.length === 0) return null;
      if (candidates.length > 1) {
        throw new TrackingError('conflict', `the id prefix "${text}" is ambiguous; it matches:\n${candidates.map((c) => `  ${c.id}  ${c.name}`).join('\n')}`);
      }
      const row = await prisma.sweep.findUnique({ where: { id: (candidates[0] as { id: string }).id } });
      return row ? detail(row) : null;
    },

    async listSweeps(options = {}) {
      const rows = await prisma.sweep.findMany({ orderBy: { createdAt: 'desc' }, take: Math.min(Math.max(options.limit ?? 20, 1), 1000) });
      const grouped = await prisma.experiment.groupBy({ by: ['sweepId', 'status'], where: { sweepId: { in: rows.map((row) => row.id) } }, _count: { _all: true } });
      return rows.map((row) => {
        const sweep = toSweep(row);
        const counts: SweepListItem['counts'] = { pending: 0, queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
        let recorded = 0;
        for (const group of grouped.filter((g) => g.sweepId === row.id)) {
          counts[group.status] += group._count._all;
          recorded += group._count._all;
        }
        counts.pending = Math.max(0, sweep.plan.length - recorded);
        return { ...sweep, counts };
      });
    },

    async close() {
      await prisma.$disconnect();
    },
  };
}
