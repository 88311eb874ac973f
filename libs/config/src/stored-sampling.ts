import { ConfigError } from './experiment-config';

/**
 * What a stored sampling (`dataset.source.kind: 'manifest'`) fixes about an experiment: its shards
 * hold images of one size, and its Data-B items are assigned to a number of folds. A run on it can
 * only use those values.
 */
export interface StoredSamplingShape {
  /** Side of the manifest's images, in pixels. */
  imageSize: number;
  /** Number of Data-B folds in the manifest. */
  folds: number;
}

/** The config fields a stored sampling decides, in the order they are checked. */
const SHAPE_FIELDS = ['imageSize', 'folds'] as const satisfies readonly (keyof StoredSamplingShape)[];

/**
 * Takes `dataset.imageSize` and `dataset.folds` of a run on a stored sampling from the manifest, so
 * a configuration need not repeat them. A value the configuration states itself must agree.
 * @param raw the configuration as given (before defaults are filled in), so that a stated value can
 * be told from a default.
 * @param manifestKey the manifest the shape was read from, named in the error.
 * @param origin where `raw` came from (a file path, `--set`), quoted in the error.
 * @returns a copy of `raw` with both fields set from the manifest.
 * @throws ConfigError naming each field that states another value than the manifest.
 */
export function applyStoredSamplingShape(raw: Record<string, unknown>, shape: StoredSamplingShape, manifestKey: string, origin = 'config'): Record<string, unknown> {
  const stated = isObject(raw['dataset']) ? raw['dataset'] : {};
  const conflicts = SHAPE_FIELDS.filter((field) => stated[field] !== undefined && stated[field] !== shape[field]);
  if (conflicts.length > 0) {
    const lines = conflicts.map(
      (field) => `  dataset.${field}: ${JSON.stringify(stated[field])} conflicts with the stored sampling ${manifestKey}, which has ${shape[field]}; leave it out (a run on a manifest takes it from the manifest)`,
    );
    throw new ConfigError(`${origin}: invalid experiment configuration\n${lines.join('\n')}`, conflicts.map((field) => `dataset.${field}`));
  }
  return { ...raw, dataset: { ...stated, imageSize: shape.imageSize, folds: shape.folds } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
