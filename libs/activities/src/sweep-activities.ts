import type { FinishedExperimentStatus, RegisterSweepInput, SweepStore } from '@detl/tracking';

/** What the sweep bookkeeping activities need. */
export interface SweepActivityDependencies {
  sweeps: SweepStore;
}

/**
 * The bookkeeping activities of `sweepWorkflow`: the sweep's row in PostgreSQL. Experiments link
 * themselves to it when they register (`registerExperiment` with `sweep`).
 */
export function createSweepActivities({ sweeps }: SweepActivityDependencies) {
  return {
    /** Creates (or finds, on retry) the sweep's row with its plan, and marks it running. */
    async registerSweep(input: RegisterSweepInput): Promise<void> {
      await sweeps.registerSweep(input);
      await sweeps.markSweepRunning(input.id);
    },

    /** Records how the sweep ended. */
    async finishSweep({ sweepId, status, error }: { sweepId: string; status: FinishedExperimentStatus; error?: string | null }): Promise<void> {
      await sweeps.finishSweep(sweepId, { status, error });
    },
  };
}

/** The sweep activities, as workflows see them through `proxyActivities`. */
export type SweepActivities = ReturnType<typeof createSweepActivities>;
