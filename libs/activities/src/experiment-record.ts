import { createHash } from 'node:crypto';
import type { ExperimentConfig } from '@detl/config';
import type { ExperimentRef, FinishExperimentInput, RegisterExperimentInput } from './activity-types';
import type { ActivityDependencies } from './stage-runner';

/**
 * The bookkeeping activities around the five stages: the experiment's row in PostgreSQL, created
 * (or found again, on retry), marked running and finished.
 */
export function createExperimentRecord({ tracking }: Pick<ActivityDependencies, 'tracking'>) {
  return {
    /** Creates (or finds, on retry) the experiment's run record. */
    async registerExperiment({ workflowId, config, sweep }: RegisterExperimentInput): Promise<ExperimentRef> {
      const experiment = await tracking.createExperiment({
        workflowId,
        name: config.name,
        config,
        configHash: hashConfig(config),
        seed: config.seed,
        sweep,
      });
      return { experimentId: experiment.id };
    },

    /** Marks the run as started. */
    async markExperimentRunning({ experimentId }: ExperimentRef): Promise<void> {
      await tracking.markExperimentRunning(experimentId, {});
    },

    /** Writes the run's final status, error and summary. */
    async finishExperiment({ experimentId, status, error, summary }: FinishExperimentInput): Promise<void> {
      await tracking.markExperimentFinished(experimentId, { status, error, summary });
    },
  };
}

/** Stable hash of a configuration, so identical runs can be found in the history. */
export function hashConfig(config: ExperimentConfig): string {
  return createHash('sha256').update(stableStringify(config)).digest('hex');
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, child]) => `${JSON.stringify(key)}:${stableStringify(child)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
