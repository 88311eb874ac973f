import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { WorkflowNotFoundError } from '@temporalio/client';
import { foldOfTask, parseSweepSpec, resolveSweepExperiments, taskOf, trainingTaskQueueOf, type SweepExperiment, type SweepSpec } from '@detl/config';
import { homeOwnedServices, startEmbeddedServices, usesEmbeddedServices } from '@detl/services';
import type { ObjectStore } from '@detl/storage';
import { createSweepStore, TrackingError, type SweepDetail, type SweepExperimentRow, type SweepStore } from '@detl/tracking';
import type { sweepWorkflow, SweepWorkflowInput } from '@detl/workflows';
import { CliError } from '../cli-error';
import { storedSamplingShape } from '../experiment-input';
import { loadCliSettings, openRuntime, type CliRuntime } from '../runtime';
import { formatSweepReportTable, renderSweepReportPng, summariseSweep } from '../sweep-report';

/** Flags of `detl sweep launch`. */
export interface SweepLaunchFlags {
  config?: string;
  json?: boolean;
  /** Start the sweep and return; the services stay up and workers (`detl worker`) run it. */
  detach?: boolean;
  /** False with `--no-worker`: follow the sweep without starting a local worker. */
  worker?: boolean;
}

const FINISHED = ['succeeded', 'failed', 'cancelled'];
const POLL_INTERVAL_MS = 2000;

/** A sweep file read and expanded: every experiment validated, nothing started. */
export interface LoadedSweep {
  spec: SweepSpec;
  experiments: SweepExperiment[];
  /** The raw configuration every experiment starts from (to expand again with stored samplings). */
  base: Record<string, unknown>;
}

/**
 * Reads a sweep file (JSON, or YAML for .yaml/.yml), resolves its `baseConfig` and `dataset`
 * relative to the file, and expands and validates every experiment.
 * @throws CliError (exit 2) for an unreadable file; ConfigError (exit 2) naming each bad experiment
 * by index and config path.
 */
export function loadSweep(file: string): LoadedSweep {
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) throw new CliError(`--config ${file}: file not found`, 2);
  const text = readFileSync(absolute, 'utf8');
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(absolute) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new CliError(`--config ${file}: not valid ${/\.ya?ml$/i.test(absolute) ? 'YAML' : 'JSON'} (${(error as Error).message})`, 2);
  }
  const spec = parseSweepSpec(raw, file);
  const folder = path.dirname(absolute);
  let base: Record<string, unknown> = {};
  if (spec.baseConfig !== undefined) {
    const baseFile = path.resolve(folder, spec.baseConfig);
    if (!existsSync(baseFile)) throw new CliError(`${file}: baseConfig ${spec.baseConfig} not found (looked at ${baseFile})`, 2);
    try {
      base = JSON.parse(readFileSync(baseFile, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new CliError(`${file}: baseConfig ${spec.baseConfig} is not valid JSON (${(error as Error).message})`, 2);
    }
  }
  base = mergeDeep(base, spec.base ?? {});
  if (spec.dataset !== undefined) {
    const root = path.resolve(folder, spec.dataset);
    if (!existsSync(root) || !statSync(root).isDirectory()) throw new CliError(`${file}: dataset ${spec.dataset} is not a folder (looked at ${root})`, 2);
    base = mergeDeep(base, { dataset: { source: { kind: 'folder', root } } });
  }
  return { spec, experiments: resolveSweepExperiments(spec, base), base };
}

/**
 * The sweep's experiments with the image size and folds of the stored manifests they run on
 * (`dataset.source.kind: 'manifest'`), read from the object store.
 * @throws ConfigError (exit 2) naming an experiment whose configuration contradicts its manifest.
 */
export async function withStoredSamplings(loaded: LoadedSweep, store: ObjectStore): Promise<SweepExperiment[]> {
  const keys = new Set(loaded.experiments.flatMap(({ config }) => (config.dataset.source.kind === 'manifest' ? [config.dataset.source.key] : [])));
  if (keys.size === 0) return loaded.experiments;
  const shapes = new Map(await Promise.all([...keys].map(async (key) => [key, await storedSamplingShape(store, key)] as const)));
  return resolveSweepExperiments(loaded.spec, loaded.base, shapes);
}

function mergeDeep(base: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const current = result[key];
    const objects = isObject(current) && isObject(value);
    // A different dataset source kind replaces the old source instead of mixing their keys.
    result[key] = objects && !(key === 'source' && current.kind !== value.kind) ? mergeDeep(current, value) : value;
  }
  return result;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function withSweeps<T>(runtime: CliRuntime, use: (sweeps: SweepStore) => Promise<T>): Promise<T> {
  const sweeps = createSweepStore(runtime.settings.databaseUrl);
  try {
    return await use(sweeps);
  } finally {
    await sweeps.close();
  }
}

async function findSweep(sweeps: SweepStore, ref: string): Promise<SweepDetail> {
  let sweep: SweepDetail | null;
  try {
    sweep = await sweeps.getSweep(ref);
  } catch (error) {
    if (error instanceof TrackingError && error.code === 'conflict') throw new CliError(`sweep ${ref}: ${error.message}`);
    throw error;
  }
  if (!sweep) throw new CliError(`no sweep with id, id prefix or workflow id "${ref}" — see detl sweep list`);
  return sweep;
}

/**
 * `detl sweep launch -c sweep.json|yaml`: validates every experiment, starts the `sweepWorkflow`,
 * and follows it to the end with a local worker (or returns at once with `--detach`).
 */
export async function launchSweepCommand(flags: SweepLaunchFlags): Promise<void> {
  if (!flags.config) throw new CliError('sweep launch needs -c <sweep.json|sweep.yaml>', 2);
  const loaded = loadSweep(flags.config);
  const { spec } = loaded;
  if (flags.detach) {
    // The sweep outlives this command, so the embedded services it needs must too.
    const settings = loadCliSettings();
    if (usesEmbeddedServices(settings)) await startEmbeddedServices(settings, { keepAlive: true, homeOwned: homeOwnedServices() });
  }
  const runtime = await openRuntime({ temporal: true, s3: true });
  try {
    // Experiments on a stored manifest take its image size and folds (S3), before anything starts.
    const experiments = await withStoredSamplings(loaded, runtime.store);
    if (!flags.detach && flags.worker !== false) runtime.startLocalWorker();
    const sweepId = randomUUID();
    const workflowId = `sweep-${sweepId}`;
    const input: SweepWorkflowInput = {
      sweepId,
      name: spec.name,
      spec: spec as unknown as Record<string, unknown>,
      experiments: experiments.map((e) => ({ index: e.index, workflowId: `${workflowId}-${e.index}`, overrides: e.overrides, config: e.config })),
      concurrency: spec.concurrency,
      trainingTaskQueue: spec.trainingTaskQueue ?? trainingTaskQueueOf(runtime.settings),
    };
    const client = await runtime.temporal();
    await client.workflow.start<typeof sweepWorkflow>('sweepWorkflow', { taskQueue: runtime.settings.temporal.taskQueue, workflowId, args: [input] });
    if (flags.detach) {
      if (flags.json) console.log(JSON.stringify({ sweepId, workflowId, experiments: experiments.length }, null, 2));
      else {
        console.log(`sweep ${sweepId} (${spec.name}): ${experiments.length} experiments, ${spec.concurrency} at a time`);
        console.log(`workers run it: detl worker; follow with: detl sweep status ${sweepId.slice(0, 8)}`);
      }
      return;
    }
    if (!flags.json) console.log(`sweep ${sweepId} (${spec.name}): ${experiments.length} experiments, ${spec.concurrency} at a time — detl sweep status ${sweepId.slice(0, 8)}`);
    const sweep = await withSweeps(runtime, async (sweeps) => {
      let last = '';
      for (;;) {
        const current = await sweeps.getSweep(sweepId);
        if (current) {
          const line = progressLine(current);
          // Printed when the counts change, not on every poll.
          if (!flags.json && line !== last) console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
          last = line;
          if (FINISHED.includes(current.status)) return current;
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
      }
    });
    if (flags.json) console.log(JSON.stringify(sweep, null, 2));
    else console.log(formatSweep(sweep));
    if (sweep.status !== 'succeeded') process.exitCode = 1;
  } finally {
    await runtime.close();
  }
}

function counts(sweep: SweepDetail): string {
  const tally = new Map<string, number>();
  for (const e of sweep.experiments) tally.set(e.status, (tally.get(e.status) ?? 0) + 1);
  return [...tally.entries()].map(([status, n]) => `${n} ${status}`).join(', ');
}

function progressLine(sweep: SweepDetail): string {
  return `sweep ${sweep.status}: ${counts(sweep)}`;
}

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;

/** Experiments best first: by mean fold accuracy, unfinished ones last in plan order. */
export function rankExperiments(rows: readonly SweepExperimentRow[]): SweepExperimentRow[] {
  return [...rows].sort((a, b) => (b.summary?.meanAccuracy ?? -1) - (a.summary?.meanAccuracy ?? -1) || a.index - b.index);
}

function pretrainingOf(row: SweepExperimentRow): string {
  if (row.experimentId === null) return '';
  if (row.tasks.includes(taskOf('pretrainFromScratch'))) return 'own';
  if (row.freeze === 'scratch') return 'none';
  return row.tasks.some((task) => foldOfTask(task) !== null) ? 'reused' : '';
}

/** The status table of a sweep, sorted by mean fold accuracy. */
export function formatSweep(sweep: SweepDetail): string {
  const lines = [
    `sweep ${sweep.id} (${sweep.name})`,
    `  status   ${sweep.status}${sweep.error ? ` — ${sweep.error}` : ''}`,
    `  created  ${sweep.createdAt.toISOString()}   finished ${sweep.finishedAt?.toISOString() ?? '–'}`,
    `  experiments ${sweep.experiments.length} (${counts(sweep)}), ${sweep.concurrency} at a time`,
    '',
    `${'#'.padStart(3)}  ${'status'.padEnd(9)}  ${'accuracy (mean ± std)'.padEnd(21)}  ${'95% bootstrap'.padEnd(13)}  ${'pretrain'.padEnd(8)}  ${'run'.padEnd(8)}  overrides`,
  ];
  for (const row of rankExperiments(sweep.experiments)) {
    const s = row.summary;
    const accuracy = s ? `${percent(s.meanAccuracy)} ± ${(s.stdAccuracy * 100).toFixed(1)}` : '–';
    const interval = s ? `${(s.accuracyInterval.lower * 100).toFixed(1)}–${percent(s.accuracyInterval.upper)}` : '–';
    const overrides = Object.entries(row.overrides)
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(' ');
    lines.push(
      `${String(row.index).padStart(3)}  ${row.status.padEnd(9)}  ${accuracy.padEnd(21)}  ${interval.padEnd(13)}  ${pretrainingOf(row).padEnd(8)}  ${(row.experimentId?.slice(0, 8) ?? '–').padEnd(8)}  ${overrides}`,
    );
  }
  return lines.join('\n');
}

/**
 * `detl sweep status <id>`: the sweep's experiments, best mean fold accuracy first; with `--watch`
 * the table is printed again whenever it changes, until the sweep ends.
 */
export async function sweepStatusCommand(ref: string, flags: { json?: boolean; watch?: boolean | string }): Promise<void> {
  const seconds = flags.watch === undefined || flags.watch === false ? null : flags.watch === true ? 5 : Number(flags.watch);
  if (seconds !== null && (!Number.isFinite(seconds) || seconds < 1)) throw new CliError(`--watch ${String(flags.watch)}: expected seconds (at least 1)`, 2);
  const runtime = await openRuntime({ temporal: false, s3: false });
  try {
    await withSweeps(runtime, async (sweeps) => {
      let last = '';
      for (;;) {
        const sweep = await findSweep(sweeps, ref);
        const text = flags.json ? JSON.stringify({ ...sweep, experiments: rankExperiments(sweep.experiments) }, null, 2) : formatSweep(sweep);
        if (text !== last) console.log(seconds !== null && !flags.json ? `${new Date().toISOString().slice(11, 19)}\n${text}\n` : text);
        last = text;
        if (seconds === null || FINISHED.includes(sweep.status)) return;
        await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      }
    });
  } finally {
    await runtime.close();
  }
}

/** `detl sweep list`: sweeps, newest first. */
export async function listSweepsCommand(flags: { json?: boolean; limit?: string }): Promise<void> {
  const limit = Number(flags.limit ?? '20');
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError(`--limit ${flags.limit}: expected an integer from 1 to 1000`, 2);
  const runtime = await openRuntime({ temporal: false, s3: false });
  try {
    const items = await withSweeps(runtime, (sweeps) => sweeps.listSweeps({ limit }));
    if (flags.json) {
      console.log(JSON.stringify(items, null, 2));
      return;
    }
    if (items.length === 0) {
      console.log('no sweeps yet — start one with: detl sweep launch -c configs/sweeps/ablation.json');
      return;
    }
    console.log(`${'id'.padEnd(36)}  ${'status'.padEnd(9)}  ${'created'.padEnd(19)}  ${'experiments'.padEnd(34)}  name`);
    for (const sweep of items) {
      const tally = Object.entries(sweep.counts)
        .filter(([, n]) => n > 0)
        .map(([status, n]) => `${n} ${status}`)
        .join(', ');
      console.log(`${sweep.id}  ${sweep.status.padEnd(9)}  ${sweep.createdAt.toISOString().slice(0, 19).replace('T', ' ')}  ${tally.padEnd(34)}  ${sweep.name}`);
    }
  } finally {
    await runtime.close();
  }
}

/**
 * `detl sweep cancel <id>`: cancels the sweep's workflow, which cancels its running experiments
 * (their trainings stop, they record themselves cancelled) and starts no more; waits until the
 * sweep record says it ended.
 */
export async function cancelSweepCommand(ref: string, flags: { json?: boolean; timeout?: string }): Promise<void> {
  const timeoutSeconds = Number(flags.timeout ?? '120');
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0) throw new CliError(`--timeout ${flags.timeout}: expected whole seconds`, 2);
  const runtime = await openRuntime({ temporal: true, s3: false });
  try {
    await withSweeps(runtime, async (sweeps) => {
      const sweep = await findSweep(sweeps, ref);
      if (FINISHED.includes(sweep.status)) throw new CliError(`sweep ${sweep.id} has already ${sweep.status === 'cancelled' ? 'been cancelled' : sweep.status}; nothing to cancel`);
      const requestedAt = Date.now();
      try {
        await (await runtime.temporal()).workflow.getHandle(sweep.workflowId).cancel();
      } catch (error) {
        if (!(error instanceof WorkflowNotFoundError)) throw error;
        await sweeps.finishSweep(sweep.id, { status: 'cancelled', error: 'cancelled by detl sweep cancel (its workflow no longer existed)' });
      }
      let current: SweepDetail = sweep;
      while (!FINISHED.includes(current.status) && Date.now() - requestedAt < timeoutSeconds * 1000) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        current = (await sweeps.getSweep(sweep.id)) ?? current;
      }
      const ended = FINISHED.includes(current.status);
      if (flags.json) console.log(JSON.stringify({ id: sweep.id, workflowId: sweep.workflowId, status: current.status, experiments: current.experiments.map(({ index, status, experimentId }) => ({ index, status, experimentId })) }, null, 2));
      else if (!ended) console.log(`cancellation of sweep ${sweep.id} requested; not recorded within ${timeoutSeconds} s (is a worker running?)`);
      else console.log(`sweep ${sweep.id} ${current.status} (${((Date.now() - requestedAt) / 1000).toFixed(1)} s): ${counts(current)}`);
      if (ended && current.status !== 'cancelled') process.exitCode = 1;
    });
  } finally {
    await runtime.close();
  }
}

/**
 * `detl sweep report <id>`: the sweep's variants (experiments equal apart from the seed) compared
 * in one table, mean over seeds ± std, and a PNG chart of the same.
 */
export async function sweepReportCommand(ref: string, flags: { json?: boolean; out?: string }): Promise<void> {
  const runtime = await openRuntime({ temporal: false, s3: false });
  try {
    const sweep = await withSweeps(runtime, (sweeps) => findSweep(sweeps, ref));
    const variants = summariseSweep(sweep);
    const out = path.resolve(flags.out ?? path.join(runtime.settings.home, 'sweeps', sweep.id, 'report.png'));
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, await renderSweepReportPng(`${sweep.name}: accuracy per variant over seeds`, variants));
    if (flags.json) console.log(JSON.stringify({ id: sweep.id, name: sweep.name, status: sweep.status, variants, chart: out }, null, 2));
    else console.log(`${formatSweepReportTable(sweep, variants)}\n\nchart: ${out}`);
  } finally {
    await runtime.close();
  }
}
