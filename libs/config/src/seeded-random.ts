/**
 * mulberry32: a tiny, fast 32-bit generator of uniform numbers in [0, 1), fully determined by its
 * seed and identical on every platform. The one generator behind sampling, synthetic images,
 * training shuffles and augmentation, bootstrap intervals and random sweeps, so that each of them
 * replays bit for bit from a seed. Not for cryptography.
 * @param seed any number; its low 32 bits are the state.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
