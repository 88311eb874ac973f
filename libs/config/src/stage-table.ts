/**
 * The five stages of the DETL experiment, each spelled once: the Temporal activity that runs it,
 * the `stage` enum value its attempts carry in PostgreSQL (the Prisma `Stage` enum; a tracking test
 * checks the two agree), the task name(s) of its units of work (attempt and epoch rows) and the
 * label people read. Workflows, activities, tracking, the CLI and the dashboard all take names from
 * here instead of retyping them.
 *
 * Pure data and string functions, no imports and no I/O, so deterministic workflow code and the
 * dashboard's browser bundle can use it too.
 */

/** The task name of a fold's fine-tuning is this prefix and the fold index: `fold-0`, `fold-1`, … */
const FOLD_TASK_PREFIX = 'fold-';

/** The stages in workflow order. */
export const STAGE_TABLE = [
  { activity: 'sampleDataset', trackingStage: 'sample_dataset', task: 'sample', label: 'sample dataset', perFold: false },
  { activity: 'pretrainFromScratch', trackingStage: 'pretrain', task: 'pretrain', label: 'pretrain', perFold: false },
  // One task per fold (`fold-<k>`); `task` is the prefix they share.
  { activity: 'fineTuneFold', trackingStage: 'fine_tune_fold', task: FOLD_TASK_PREFIX, label: 'fine-tune fold', perFold: true },
  { activity: 'aggregateResults', trackingStage: 'aggregate_results', task: 'aggregate', label: 'aggregate', perFold: false },
  { activity: 'generateGradCams', trackingStage: 'generate_grad_cams', task: 'grad-cam', label: 'grad-cam', perFold: false },
] as const;

/** One row of {@link STAGE_TABLE}. */
export type StageDefinition = (typeof STAGE_TABLE)[number];
/** Name of a stage's activity (`sampleDataset`, …, `fineTuneFold`, …), which also keys the workflow's progress. */
export type StageActivity = StageDefinition['activity'];
/** A stage as the run record's `stage` column spells it (the Prisma `Stage` enum). */
export type TrackingStage = StageDefinition['trackingStage'];

/** The stages by activity name. */
export const STAGES = Object.fromEntries(STAGE_TABLE.map((stage) => [stage.activity, stage])) as {
  readonly [A in StageActivity]: Extract<StageDefinition, { activity: A }>;
};

/** Task name of one fold's fine-tuning: `fold-<k>`. */
export function foldTask(fold: number): string {
  if (!Number.isInteger(fold) || fold < 0) throw new RangeError(`fold must be an integer from 0, got ${fold}`);
  return `${FOLD_TASK_PREFIX}${fold}`;
}

/** The fold a task name belongs to, or null when it is not a fold's task. */
export function foldOfTask(task: string): number | null {
  if (!task.startsWith(FOLD_TASK_PREFIX)) return null;
  const digits = task.slice(FOLD_TASK_PREFIX.length);
  return /^(0|[1-9]\d*)$/.test(digits) ? Number(digits) : null;
}

/**
 * The task name of a stage's unit of work: the stage's own name, or `fold-<k>` for the per-fold
 * stage, which needs the fold.
 */
export function taskOf(activity: StageActivity, fold?: number): string {
  const stage = STAGES[activity];
  if (!stage.perFold) return stage.task;
  if (fold === undefined) throw new RangeError(`${activity} runs once per fold: its task name needs the fold`);
  return foldTask(fold);
}

/** The stage a task name belongs to, or null for a name no stage uses. */
export function stageOfTask(task: string): StageDefinition | null {
  if (foldOfTask(task) !== null) return STAGES.fineTuneFold;
  return STAGE_TABLE.find((stage) => !stage.perFold && stage.task === task) ?? null;
}

/** What people read for a task: `pretrain`, `fine-tune fold 2`, …; an unknown name as it is. */
export function taskLabel(task: string): string {
  const fold = foldOfTask(task);
  if (fold !== null) return `${STAGES.fineTuneFold.label} ${fold}`;
  return stageOfTask(task)?.label ?? task;
}

/**
 * Orders task names as the workflow runs them (sample, pretrain, folds by index, aggregate,
 * Grad-CAM; unknown names last, alphabetically): a comparator for `Array.prototype.sort`.
 */
export function compareTasks(a: string, b: string): number {
  const rank = (task: string): [number, number] => {
    const stage = stageOfTask(task);
    return [stage ? STAGE_TABLE.indexOf(stage) : STAGE_TABLE.length, foldOfTask(task) ?? 0];
  };
  const [stageA, foldA] = rank(a);
  const [stageB, foldB] = rank(b);
  return stageA - stageB || foldA - foldB || (a < b ? -1 : a > b ? 1 : 0);
}
