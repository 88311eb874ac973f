import type { ExperimentSummary } from '@detl/activities';
import type { TrackingStore } from '@detl/tracking';
import { CliError } from '../cli-error';
import { formatMatrix, formatSummary } from '../report-format';
import { findRun } from '../run-reference';
import { openRuntime } from '../runtime';

/** Flags of `detl runs list`. */
export interface ListFlags {
  json?: boolean;
  limit: string;
  status?: string;
}

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;

/** `detl runs list`: newest experiments first, from PostgreSQL. */
export async function listRunsCommand(flags: ListFlags): Promise<void> {
  const limit = Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError(`--limit ${flags.limit}: expected an integer from 1 to 1000`);
  if (flags.status !== undefined && !(STATUSES as readonly string[]).includes(flags.status)) {
    throw new CliError(`--status ${flags.status}: expected one of ${STATUSES.join(', ')}`);
  }
  const runtime = await openRuntime({ temporal: false, s3: false });
  try {
    const page = await runtime.tracking.listExperiments({ limit, status: flags.status as (typeof STATUSES)[number] | undefined });
    if (flags.json) {
      console.log(JSON.stringify(page, null, 2));
      return;
    }
    if (page.items.length === 0) {
      console.log(flags.status === undefined ? 'no runs recorded yet — start one with: detl demo' : await noRunsWithStatus(runtime.tracking, flags.status));
      return;
    }
    console.log(`${'id'.padEnd(36)}  ${'status'.padEnd(9)}  ${'created'.padEnd(19)}  ${'accuracy'.padEnd(17)}  name`);
    for (const experiment of page.items) {
      const summary = experiment.summary as ExperimentSummary | null;
      const accuracy = summary ? `${(summary.meanAccuracy * 100).toFixed(2)} ± ${(summary.stdAccuracy * 100).toFixed(2)}%` : '–';
      console.log(
        `${experiment.id}  ${experiment.status.padEnd(9)}  ${experiment.createdAt.toISOString().slice(0, 19).replace('T', ' ')}  ${accuracy.padEnd(17)}  ${experiment.name}`,
      );
    }
  } finally {
    await runtime.close();
  }
}

/** What an empty filtered list says: a filter that matches nothing is not an empty history. */
async function noRunsWithStatus(tracking: TrackingStore, status: string): Promise<string> {
  const counts = await tracking.countExperimentsByStatus();
  const present = Object.entries(counts).filter(([, count]) => count > 0);
  const total = present.reduce((sum, [, count]) => sum + count, 0);
  if (total === 0) return `no ${status} runs — no runs recorded yet; start one with: detl demo`;
  const breakdown = present.map(([name, count]) => `${count} ${name}`).join(', ');
  return `no ${status} runs (${total} run${total === 1 ? '' : 's'} recorded: ${breakdown}) — see detl runs list`;
}

/** `detl runs show <id>`: one experiment with its stages, folds, epochs and artifacts. */
export async function showRunCommand(id: string, flags: { json?: boolean }): Promise<void> {
  const runtime = await openRuntime({ temporal: false, s3: false });
  try {
    const experiment = await findRun(runtime.tracking, id, `run ${id}`);
    if (!experiment) throw new CliError(`no run with id, id prefix or workflow id "${id}" — see detl runs list`);
    if (flags.json) {
      console.log(JSON.stringify(experiment, (_, value: unknown) => (typeof value === 'bigint' ? Number(value) : value), 2));
      return;
    }
    console.log(`experiment ${experiment.id} (${experiment.name})`);
    console.log(`  workflow   ${experiment.workflowId}`);
    console.log(`  status     ${experiment.status}${experiment.error ? ` — ${experiment.error}` : ''}`);
    console.log(`  created    ${experiment.createdAt.toISOString()}`);
    console.log(`  finished   ${experiment.finishedAt?.toISOString() ?? '–'}`);
    console.log(`  backend    ${experiment.backend ?? '–'}`);
    console.log(`  manifest   ${experiment.datasetManifestKey ?? '–'}`);
    console.log('\nstage attempts');
    for (const attempt of experiment.stageAttempts) {
      const seconds = attempt.durationMs === null ? '' : ` ${(attempt.durationMs / 1000).toFixed(1)} s`;
      console.log(`  ${attempt.task.padEnd(10)} attempt ${attempt.attempt}  ${attempt.status.padEnd(9)}${seconds}${attempt.error ? `  ${attempt.error}` : ''}`);
    }
    if (experiment.folds.length > 0) {
      console.log('\nfolds');
      for (const fold of experiment.folds) {
        console.log(`  fold ${fold.foldIndex}: accuracy ${fold.accuracy === null ? '–' : (fold.accuracy * 100).toFixed(2) + '%'} (train ${fold.trainCount}, test ${fold.testCount})`);
      }
    }
    const summary = experiment.summary as ExperimentSummary | null;
    if (summary) console.log(formatSummary(summary));
    else if (experiment.folds.length > 0) {
      const classNames = ['normal', 'pneumonia', 'other_disease', 'covid'];
      console.log(formatMatrix(experiment.folds[0]?.confusionMatrix as number[][], classNames));
    }
    console.log(`\n${experiment.epochMetrics.length} epoch records, ${experiment.artifacts.length} artifacts`);
  } finally {
    await runtime.close();
  }
}
