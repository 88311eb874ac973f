/** One configuration path whose value is not the same in every compared run. */
export interface ConfigDifference {
  /** Dotted path, e.g. `fineTune.learningRate`. */
  path: string;
  /** The value in each run, in run order; undefined where the run has no such path. */
  values: unknown[];
}

function flatten(value: unknown, prefix: string, into: Map<string, unknown>): void {
  // Arrays are compared whole: their elements have no names a reader would look for.
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0 && prefix) into.set(prefix, {});
    for (const [key, child] of entries) flatten(child, prefix ? `${prefix}.${key}` : key, into);
    return;
  }
  into.set(prefix, value);
}

/**
 * The leaf paths where the configurations differ, sorted by path; paths with equal values in every
 * run are left out, so the diff shows only what sets the runs apart.
 */
export function diffConfigs(configs: readonly unknown[]): ConfigDifference[] {
  const flat = configs.map((config) => {
    const map = new Map<string, unknown>();
    flatten(config, '', map);
    return map;
  });
  const paths = new Set(flat.flatMap((map) => [...map.keys()]));
  const differences: ConfigDifference[] = [];
  for (const path of [...paths].sort()) {
    const values = flat.map((map) => map.get(path));
    const first = JSON.stringify(values[0]);
    if (values.some((value) => JSON.stringify(value) !== first)) differences.push({ path, values });
  }
  return differences;
}
