import type { ExperimentDetail, TrackingStore } from '@detl/tracking';
import { CliError } from './cli-error';

/** A short id needs at least this many characters, as git asks of an abbreviated commit. */
const MIN_PREFIX = 4;
/** Candidates an ambiguous prefix lists (one more is fetched to tell that there are more). */
const LISTED_CANDIDATES = 10;

/**
 * Finds the run a user named: its full id, its workflow id, or a unique prefix of its id (as git
 * takes `5f73` for a commit). An ambiguous prefix is refused with the candidates listed.
 * @param what how the message names the argument, e.g. `--model 50dc` or `run id`.
 * @returns null when nothing matches.
 * @throws CliError when the prefix matches several runs.
 */
export async function findRun(tracking: TrackingStore, ref: string, what: string): Promise<ExperimentDetail | null> {
  const exact = await tracking.getExperiment(ref);
  if (exact) return exact;
  const text = ref.trim();
  if (text.length < MIN_PREFIX || !/^[0-9a-f-]{1,35}$/i.test(text)) return null;
  const candidates = await tracking.findExperimentsByIdPrefix(text, LISTED_CANDIDATES + 1);
  if (candidates.length === 0) return null;
  if (candidates.length === 1) return tracking.getExperiment((candidates[0] as { id: string }).id);
  const lines = candidates
    .slice(0, LISTED_CANDIDATES)
    .map((e) => `  ${e.id}  ${e.status.padEnd(9)}  ${e.createdAt.toISOString().slice(0, 19).replace('T', ' ')}  ${e.name}`);
  const more = candidates.length > LISTED_CANDIDATES ? `\n  … and more; give more of the id` : '';
  throw new CliError(`${what}: the id prefix "${text}" is ambiguous; it matches these runs:\n${lines.join('\n')}${more}`);
}
