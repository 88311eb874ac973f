import {
  CancellationScope,
  CancelledFailure,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  proxyActivities,
  rootCause,
  workflowInfo,
} from '@temporalio/workflow';
import type { ExperimentConfig } from '@detl/config';
import type { SweepActivities } from '@detl/activities';
import type { ExperimentWorkflowInput, ExperimentWorkflowResult } from './workflows';

/** One experiment of a sweep: validated before the sweep started. */
export interface SweepExperimentInput {
  index: number;
  /** Workflow id of its child workflow (`<sweep workflow id>-<index>`). */
  workflowId: string;
  /** Config path → value that make it differ from the sweep's base. */
  overrides: Record<string, unknown>;
  config: ExperimentConfig;
}

/** Input of {@link sweepWorkflow}. */
export interface SweepWorkflowInput {
  sweepId: string;
  name: string;
  /** The specification as launched, kept in the sweep's record. */
  spec: Record<string, unknown>;
  experiments: SweepExperimentInput[];
  /** Experiments running at once. */
  concurrency: number;
  trainingTaskQueue?: string;
}

/** How one experiment of a sweep ended. */
export interface SweepOutcome {
  index: number;
  workflowId: string;
  status: 'succeeded' | 'failed' | 'cancelled' | 'not started';
  experimentId: string | null;
  meanAccuracy: number | null;
  /** The pretrained model it fine-tuned when that came from an earlier experiment of the sweep. */
  reusedPretraining: string | null;
  error: string | null;
}

/** What {@link sweepWorkflow} returns. */
export interface SweepWorkflowResult {
  sweepId: string;
  outcomes: SweepOutcome[];
}

const bookkeeping = proxyActivities<SweepActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumAttempts: 10 },
});

/** Stable JSON: object keys sorted, so equal values give equal strings whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * What a pretraining depends on: the sampled data (dataset and seed), the network, the pretraining
 * recipe and the runtime. Experiments with the same key differ only after pretraining (fine-tuning,
 * Grad-CAM), so one pretrained model serves them all. Null for the scratch baseline, which has none.
 */
export function pretrainingKey(config: ExperimentConfig): string | null {
  if (config.fineTune.freeze === 'scratch') return null;
  return canonical({ dataset: config.dataset, model: config.model, pretrain: config.pretrain, seed: config.seed, runtime: config.runtime });
}

function describe(error: unknown): string {
  if (error instanceof Error) return rootCause(error) ?? error.message;
  return String(error);
}

/**
 * A sweep: runs its experiments as `experimentWorkflow` children, at most `concurrency` at once, in
 * plan order. The dataset sampling is shared through the content-addressed store; the pretraining
 * is shared by experiments with the same {@link pretrainingKey}: the first of them pretrains, the
 * others wait for it and fine-tune its model (or pretrain themselves if it failed). A failed
 * experiment does not stop the others; cancelling the sweep cancels the running experiments (they
 * record themselves as cancelled) and starts no more.
 */
export async function sweepWorkflow(input: SweepWorkflowInput): Promise<SweepWorkflowResult> {
  const { sweepId } = input;
  await bookkeeping.registerSweep({
    id: sweepId,
    name: input.name,
    workflowId: workflowInfo().workflowId,
    spec: input.spec,
    plan: input.experiments.map(({ index, workflowId, overrides }) => ({ index, workflowId, overrides })),
    concurrency: input.concurrency,
  });

  const outcomes: SweepOutcome[] = input.experiments.map((e) => ({
    index: e.index,
    workflowId: e.workflowId,
    status: 'not started',
    experimentId: null,
    meanAccuracy: null,
    reusedPretraining: null,
    error: null,
  }));
  const keys = new Map(input.experiments.map((e) => [e.index, pretrainingKey(e.config)]));
  const leaders = new Map<string, number>();
  for (const e of input.experiments) {
    const key = keys.get(e.index);
    if (key && !leaders.has(key)) leaders.set(key, e.index);
  }
  // Pretrained model per key once its leader ended; null when the leader produced none.
  const pretrained = new Map<string, string | null>();
  const isReady = (e: SweepExperimentInput): boolean => {
    const key = keys.get(e.index);
    return !key || leaders.get(key) === e.index || pretrained.has(key);
  };

  async function runOne(e: SweepExperimentInput): Promise<void> {
    const outcome = outcomes[e.index] as SweepOutcome;
    const key = keys.get(e.index) ?? null;
    const leads = key !== null && leaders.get(key) === e.index;
    const reuse = key !== null && !leads ? (pretrained.get(key) ?? undefined) : undefined;
    outcome.reusedPretraining = reuse ?? null;
    const childInput: ExperimentWorkflowInput = {
      config: e.config,
      trainingTaskQueue: input.trainingTaskQueue,
      sweep: { id: sweepId, index: e.index },
      ...(reuse === undefined ? {} : { pretrainedModelPrefix: reuse }),
    };
    try {
      const result = await executeChild<(args: ExperimentWorkflowInput) => Promise<ExperimentWorkflowResult>>('experimentWorkflow', {
        workflowId: e.workflowId,
        args: [childInput],
        // A sweep that ends (or is terminated) takes its experiments with it, and they record it.
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
      Object.assign(outcome, { status: 'succeeded', experimentId: result.experimentId, meanAccuracy: result.summary.meanAccuracy });
      if (leads && key !== null) pretrained.set(key, result.pretrainedModelPrefix);
    } catch (error) {
      Object.assign(outcome, { status: isCancellation(error) ? 'cancelled' : 'failed', error: describe(error) });
      if (leads && key !== null) pretrained.set(key, null);
    }
  }

  const scope = CancellationScope.current();
  const waiting = [...input.experiments];
  const running = new Map<number, Promise<void>>();
  for (;;) {
    if (!scope.consideredCancelled) {
      for (const e of [...waiting]) {
        if (running.size >= input.concurrency) break;
        if (!isReady(e)) continue;
        waiting.splice(waiting.indexOf(e), 1);
        running.set(
          e.index,
          runOne(e).finally(() => running.delete(e.index)),
        );
      }
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }

  const cancelled = scope.consideredCancelled;
  const unsuccessful = outcomes.filter((o) => o.status !== 'succeeded');
  const status = cancelled ? 'cancelled' : unsuccessful.length === 0 ? 'succeeded' : 'failed';
  const error =
    unsuccessful.length === 0 ? null : `${unsuccessful.length} of ${outcomes.length} experiments did not succeed: ${unsuccessful.map((o) => `#${o.index} ${o.status}`).join(', ')}`;
  // The record must say how the sweep ended even while the sweep itself is being cancelled.
  await CancellationScope.nonCancellable(() => bookkeeping.finishSweep({ sweepId, status, error }));
  if (cancelled) throw new CancelledFailure('sweep cancelled');
  return { sweepId, outcomes };
}
