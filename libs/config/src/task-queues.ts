import type { ServiceSettings } from './service-settings';

/**
 * Task queue of the training activities (pretraining, fold fine-tuning) when
 * `DETL_TRAINING_TASK_QUEUE` names none. Workflow tasks, bookkeeping, data and Grad-CAM stay on the
 * main queue (`DETL_TASK_QUEUE`), so training workers (CPU or GPU machines) scale on their own.
 */
export const DEFAULT_TRAINING_TASK_QUEUE = 'training';

/**
 * What a task queue name may look like: letters, digits, `.`, `_`, `-`, starting with a letter or
 * digit, at most 200 characters. Temporal itself accepts almost any string; this keeps names safe to
 * pass through environment variables, comma lists, YAML and Kubernetes labels without quoting.
 */
export const TASK_QUEUE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

/** A task queue name that does not match {@link TASK_QUEUE_NAME_PATTERN}. */
export class TaskQueueNameError extends Error {
  override readonly name = 'TaskQueueNameError';
}

/**
 * Task queue names from repeated and/or comma-separated values (`--queue detl,training --queue gpu`),
 * in order, without duplicates.
 * @param source how the values were given (a flag or a variable), for the error message.
 * @throws TaskQueueNameError naming the first malformed name, or when no name is given at all.
 */
export function parseTaskQueueList(values: readonly string[], source: string): string[] {
  const names: string[] = [];
  for (const value of values) {
    for (const part of value.split(',')) {
      const name = part.trim();
      if (!TASK_QUEUE_NAME_PATTERN.test(name)) {
        throw new TaskQueueNameError(
          `${source} "${name}": not a task queue name (letters, digits, '.', '_' or '-', starting with a letter or digit, at most 200 characters), e.g. ${DEFAULT_TRAINING_TASK_QUEUE}`,
        );
      }
      if (!names.includes(name)) names.push(name);
    }
  }
  if (names.length === 0) throw new TaskQueueNameError(`${source}: no task queue named`);
  return names;
}

/** The training queue of these settings: `temporal.trainingTaskQueue`, else {@link DEFAULT_TRAINING_TASK_QUEUE}. */
export function trainingTaskQueueOf(settings: Pick<ServiceSettings, 'temporal'>): string {
  return settings.temporal.trainingTaskQueue ?? DEFAULT_TRAINING_TASK_QUEUE;
}
