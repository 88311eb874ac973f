import { z } from 'zod';
import { ConfigError, parseExperimentConfig, type ExperimentConfig } from './experiment-config';
import { mulberry32 } from './seeded-random';
import { applyStoredSamplingShape, type StoredSamplingShape } from './stored-sampling';

const pathPattern = /^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/;
const configPath = z.string().regex(pathPattern, 'expected a dotted config path such as fineTune.learningRate');

const distribution = z.union([
  z.strictObject({ choice: z.array(z.unknown()).min(1) }),
  z.strictObject({ uniform: z.tuple([z.number(), z.number()]) }),
  z.strictObject({ logUniform: z.tuple([z.number().positive(), z.number().positive()]) }),
  z.strictObject({ intUniform: z.tuple([z.number().int(), z.number().int()]) }),
]);

const sweepSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$/, 'letters, digits, . _ - (at most 81 characters)'),
    description: z.string().optional(),
    /** An experiment configuration every experiment starts from (inline). */
    base: z.record(z.string(), z.unknown()).optional(),
    /** Path of an experiment configuration file every experiment starts from (read by the caller). */
    baseConfig: z.string().min(1).optional(),
    /** Folder-per-class dataset for every experiment (resolved by the caller). */
    dataset: z.string().min(1).optional(),
    /** Experiments running at once (each one runs its folds in parallel on the workers). */
    concurrency: z.number().int().min(1).max(64).default(2),
    /** Task queue for the trainings of every experiment (default: the sweep's own queue). */
    trainingTaskQueue: z.string().min(1).optional(),
    /** Every combination of these values, per config path. */
    grid: z.record(configPath, z.array(z.unknown()).min(1)).optional(),
    /** Explicit variants, each a set of config path → value. */
    list: z.array(z.record(configPath, z.unknown())).min(1).optional(),
    /** Seeded random search: `samples` draws over the space. */
    random: z
      .strictObject({
        samples: z.number().int().min(1).max(1000),
        seed: z.number().int(),
        space: z.record(configPath, distribution),
      })
      .optional(),
  })
  .refine((spec) => spec.grid !== undefined || spec.list !== undefined || spec.random !== undefined, {
    message: 'a sweep needs at least one of grid, list or random',
  });

/** A validated sweep specification (`detl sweep launch -c sweep.json|yaml`). */
export type SweepSpec = z.infer<typeof sweepSchema>;

/** One experiment of a sweep before validation: its position and the values that make it differ. */
export interface SweepVariant {
  index: number;
  /** Config path → value, in the order list, grid, random. */
  overrides: Record<string, unknown>;
}

/** One validated experiment of a sweep. */
export interface SweepExperiment extends SweepVariant {
  config: ExperimentConfig;
}

/** Most experiments one sweep may expand to. */
export const MAX_SWEEP_EXPERIMENTS = 500;

/**
 * Validates a sweep specification.
 * @throws ConfigError naming each bad field.
 */
export function parseSweepSpec(input: unknown, origin = 'sweep'): SweepSpec {
  const parsed = sweepSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new ConfigError(`${origin}: invalid sweep specification\n${lines.join('\n')}`, parsed.error.issues.map((issue) => issue.path.join('.')));
  }
  return parsed.data;
}


function draw(spec: z.infer<typeof distribution>, next: () => number): unknown {
  if ('choice' in spec) return spec.choice[Math.floor(next() * spec.choice.length)];
  if ('uniform' in spec) return spec.uniform[0] + next() * (spec.uniform[1] - spec.uniform[0]);
  if ('logUniform' in spec) {
    const [low, high] = spec.logUniform.map(Math.log) as [number, number];
    // Rounded to 6 significant digits so the configs (and their hashes) read cleanly.
    return Number(Math.exp(low + next() * (high - low)).toPrecision(6));
  }
  const [low, high] = spec.intUniform;
  return low + Math.floor(next() * (high - low + 1));
}

/**
 * The experiments a sweep expands to, in a fixed order: every list entry × every grid combination
 * (last grid path varying fastest) × every random draw.
 * @throws ConfigError when the sweep would have more than {@link MAX_SWEEP_EXPERIMENTS} experiments.
 */
export function expandSweep(spec: SweepSpec): SweepVariant[] {
  let combos: Record<string, unknown>[] = spec.list?.map((entry) => ({ ...entry })) ?? [{}];
  for (const [path, values] of Object.entries(spec.grid ?? {})) {
    combos = combos.flatMap((combo) => values.map((value) => ({ ...combo, [path]: value })));
    if (combos.length > MAX_SWEEP_EXPERIMENTS) break;
  }
  if (spec.random) {
    const next = mulberry32(spec.random.seed);
    const draws = Array.from({ length: spec.random.samples }, () => Object.fromEntries(Object.entries(spec.random?.space ?? {}).map(([path, d]) => [path, draw(d, next)])));
    combos = combos.flatMap((combo) => draws.map((values) => ({ ...combo, ...values })));
  }
  if (combos.length > MAX_SWEEP_EXPERIMENTS) {
    throw new ConfigError(`sweep ${spec.name}: ${combos.length} experiments is more than ${MAX_SWEEP_EXPERIMENTS}; split it`, ['grid']);
  }
  return combos.map((overrides, index) => ({ index, overrides }));
}

/** `raw` with the value at a dotted path set, creating objects on the way. */
export function setConfigPath(raw: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const result = structuredClone(raw);
  const parts = path.split('.');
  let node: Record<string, unknown> = result;
  for (const part of parts.slice(0, -1)) {
    const child = node[part];
    if (typeof child !== 'object' || child === null || Array.isArray(child)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = structuredClone(value);
  return result;
}

/**
 * Expands the sweep over `base` (the raw configuration every experiment starts from) and validates
 * every experiment before any of them runs. Each experiment is named `<sweep>-<index>`.
 * @param storedSamplings image size and folds of the stored manifests experiments run on, by key:
 * such an experiment takes them from its manifest (see {@link applyStoredSamplingShape}).
 * @throws ConfigError listing every bad experiment by index, with the overrides that made it and
 * the config path that is wrong (a value its manifest contradicts included).
 */
export function resolveSweepExperiments(spec: SweepSpec, base: Record<string, unknown>, storedSamplings: ReadonlyMap<string, StoredSamplingShape> = new Map()): SweepExperiment[] {
  const problems: string[] = [];
  const fields: string[] = [];
  const experiments: SweepExperiment[] = [];
  for (const variant of expandSweep(spec)) {
    let raw = setConfigPath(base, 'name', `${spec.name}-${variant.index}`);
    for (const [path, value] of Object.entries(variant.overrides)) raw = setConfigPath(raw, path, value);
    const described = Object.entries(variant.overrides)
      .map(([path, value]) => `${path}=${JSON.stringify(value)}`)
      .join(', ');
    try {
      const origin = `experiment ${variant.index}`;
      let config = parseExperimentConfig(raw, origin);
      const source = config.dataset.source;
      const shape = source.kind === 'manifest' ? storedSamplings.get(source.key) : undefined;
      if (source.kind === 'manifest' && shape) config = parseExperimentConfig(applyStoredSamplingShape(raw, shape, source.key, origin), origin);
      experiments.push({ ...variant, config });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const detail = error.message.split('\n').slice(1).join('\n');
      problems.push(`experiment ${variant.index} (${described || 'no overrides'}):\n${detail}`);
      fields.push(...error.fields.map((field) => `${variant.index}:${field}`));
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(`sweep ${spec.name}: ${problems.length} of ${expandSweep(spec).length} experiments are invalid; nothing was started\n${problems.join('\n')}`, fields);
  }
  // A sweep compares its experiments, so they are tested on one Data-B: `dataset.dataB: 'all'` for
  // some (scratch) recipes only would give them a quarter more, other patients to learn from.
  const dataBRules = [...new Set(experiments.map((experiment) => experiment.config.dataset.dataB))];
  if (dataBRules.length > 1) {
    const which = dataBRules.map((rule) => `'${rule}' (experiments ${experiments.filter((e) => e.config.dataset.dataB === rule).map((e) => e.index).join(', ')})`);
    throw new ConfigError(`sweep ${spec.name}: dataset.dataB differs between experiments: ${which.join(' vs ')}; set it once for the whole sweep so every experiment is tested on one Data-B; nothing was started`, ['dataset.dataB']);
  }
  return experiments;
}
