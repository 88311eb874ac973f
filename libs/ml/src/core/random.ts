import { mulberry32 } from '@detl/config';

/**
 * Small seeded PRNG (mulberry32): training must replay identically from a seed, and a resumed
 * run must draw the same shuffles and augmentations for epoch n as an uninterrupted one, so
 * every epoch derives its own stream from (seed, epoch) instead of continuing a global one.
 */
export class SeededRandom {
  private readonly draw: () => number;

  constructor(seed: number) {
    this.draw = mulberry32(seed);
  }

  /** A stream for one purpose of one epoch, independent of how many numbers other streams drew. */
  static forEpoch(seed: number, epoch: number, purpose: number): SeededRandom {
    let h = (seed ^ 0x9e3779b9) >>> 0;
    for (const part of [epoch, purpose]) {
      h = Math.imul(h ^ (part >>> 0), 0x85ebca6b) >>> 0;
      h = (h ^ (h >>> 13)) >>> 0;
    }
    return new SeededRandom(h);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.draw();
  }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** A permutation of 0…n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const order = new Int32Array(n);
    for (let i = 0; i < n; i += 1) order[i] = i;
    for (let i = n - 1; i > 0; i -= 1) {
      const j = Math.floor(this.next() * (i + 1));
      const tmp = order[i] as number;
      order[i] = order[j] as number;
      order[j] = tmp;
    }
    return order;
  }
}
