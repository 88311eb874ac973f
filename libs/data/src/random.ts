import { createHash } from 'node:crypto';
import { mulberry32 } from '@detl/config';

/** A seeded source of uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * Seeded generator (mulberry32): tiny, fast and identical on every platform, which is what makes
 * sampling and synthetic images byte-reproducible. Not for cryptography.
 * @param seed experiment seed.
 * @param streams names that derive an independent stream from the same seed, so adding a draw in one
 *   place does not shift every other random choice.
 */
export function createRandom(seed: number, ...streams: string[]): Random {
  const digest = createHash('sha256').update(`${seed}\u0000${streams.join('\u0000')}`).digest();
  return mulberry32(digest.readUInt32LE(0));
}

/** Fisher–Yates shuffle into a new array. */
export function shuffled<T>(items: readonly T[], random: Random): T[] {
  const result = items.slice();
  for (let i = result.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    const a = result[i] as T;
    result[i] = result[j] as T;
    result[j] = a;
  }
  return result;
}

/** Uniform number in [low, high). */
export function uniform(random: Random, low: number, high: number): number {
  return low + (high - low) * random();
}

/** Standard normal draw (Box–Muller). */
export function gaussian(random: Random): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** Lower-case hex SHA-256 of bytes or text. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Compares strings by UTF-16 code units, independent of locale, so orderings are reproducible. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
