import { describe, expect, it } from 'vitest';
import { errorChain, retryTransient, type TransientRetryOptions } from './transient-retry';

/** A clock that advances only when the code under test sleeps, so backoff is checked without waiting. */
function fakeClock(random = 0.5): { options: TransientRetryOptions; sleeps: number[]; logs: string[] } {
  let time = 0;
  const sleeps: number[] = [];
  const logs: string[] = [];
  return {
    sleeps,
    logs,
    options: {
      now: () => time,
      sleep: async (ms) => {
        sleeps.push(ms);
        time += ms;
      },
      random: () => random,
      log: (message) => logs.push(message),
    },
  };
}

class Transient extends Error {
  override readonly name = 'Transient';
}
const isTransient = (error: unknown): boolean => error instanceof Transient;

describe('retryTransient', () => {
  it('retries transient failures with growing, jittered, capped waits and logs each retry and the recovery once', async () => {
    const clock = fakeClock(0.5);
    let calls = 0;
    const result = await retryTransient(
      'op',
      async () => {
        calls++;
        if (calls <= 6) throw new Transient(`down ${calls}`);
        return 'done';
      },
      isTransient,
      { ...clock.options, initialDelayMs: 1_000, maxDelayMs: 8_000 },
    );
    expect(result).toBe('done');
    expect(calls).toBe(7);
    // step = min(8 s, 1 s · 2^n); wait = step/2 + 0.5 · step/2
    expect(clock.sleeps).toEqual([750, 1_500, 3_000, 6_000, 6_000, 6_000]);
    expect(clock.logs).toHaveLength(7);
    expect(clock.logs[0]).toBe('op failed (Transient: down 1); retry 1 in 0.8 s (0.0 s of the 120.0 s budget used)');
    expect(clock.logs[6]).toBe('op succeeded after 6 retries (23.3 s)');
  });

  it('keeps every wait between half and all of its exponential step', async () => {
    for (const random of [0, 0.999]) {
      const clock = fakeClock(random);
      let calls = 0;
      await retryTransient('op', async () => (++calls < 4 ? Promise.reject(new Transient('x')) : 1), isTransient, { ...clock.options, initialDelayMs: 400 });
      const steps = [400, 800, 1_600];
      clock.sleeps.forEach((ms, i) => {
        expect(ms).toBeGreaterThanOrEqual((steps[i] ?? 0) / 2);
        expect(ms).toBeLessThanOrEqual(steps[i] ?? 0);
      });
    }
  });

  it('throws the last transient error unchanged once the next wait would pass the budget', async () => {
    const clock = fakeClock(1);
    let calls = 0;
    const failure = retryTransient(
      'op',
      async () => {
        calls++;
        throw new Transient(`down ${calls}`);
      },
      isTransient,
      { ...clock.options, budgetMs: 10_000, initialDelayMs: 1_000, maxDelayMs: 4_000 },
    );
    await expect(failure).rejects.toThrow(new Transient('down 4'));
    // waits 1, 2 and 4 s: 7 s used, and the next 4 s wait would end at 11 s > 10 s
    expect(clock.sleeps.reduce((sum, ms) => sum + ms, 0)).toBeLessThanOrEqual(10_000);
    expect(clock.sleeps).toEqual([1_000, 2_000, 4_000]);
    expect(calls).toBe(4);
    expect(clock.logs.at(-1)).toMatch(/^op failed \(Transient: down \d\); giving up after 4 attempts in [\d.]+ s \(budget 10\.0 s\)$/);
  });

  it('throws other errors at once, without waiting or logging', async () => {
    const clock = fakeClock();
    let calls = 0;
    const fatal = new Error('bad request');
    await expect(
      retryTransient(
        'op',
        async () => {
          calls++;
          throw fatal;
        },
        isTransient,
        clock.options,
      ),
    ).rejects.toBe(fatal);
    expect(calls).toBe(1);
    expect(clock.sleeps).toEqual([]);
    expect(clock.logs).toEqual([]);
  });
});

describe('errorChain', () => {
  it('follows causes and stops at a cycle', () => {
    const inner = new Error('inner');
    const outer = new Error('outer', { cause: inner });
    (inner as { cause?: unknown }).cause = outer;
    expect(errorChain(outer)).toEqual([outer, inner]);
  });
});
