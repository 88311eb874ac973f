/** Tuning of {@link retryTransient}: a bounded exponential backoff with jitter. */
export interface TransientRetryOptions {
  /**
   * Longest time a call may spend failing and waiting before its last error is thrown, in ms
   * (default 120 000). Two minutes absorb a service restart or a ~10 s outage; a real outage still
   * surfaces, and then Temporal's own retry of the activity takes over.
   */
  budgetMs?: number;
  /** Wait before the first retry, in ms (default 500). */
  initialDelayMs?: number;
  /** Longest wait between two attempts, in ms (default 10 000). */
  maxDelayMs?: number;
  /** Where the one line per retry, recovery and give-up goes (default `console.warn`). */
  log?: (message: string) => void;
  /** Clock and timer, replaceable so tests need not wait. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform [0, 1) source of the jitter (default `Math.random`). */
  random?: () => number;
  /** How an error reads in the log line (default {@link describeError}). */
  describe?: (error: unknown) => string;
}

/** Default of {@link TransientRetryOptions.budgetMs}. */
export const DEFAULT_TRANSIENT_RETRY_BUDGET_MS = 120_000;

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One line describing an error for the retry log: its name or code and message, without a stack. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const label = typeof code === 'string' && code !== '' ? `${error.name} ${code}` : error.name;
  const message = error.message.replace(/\s+/g, ' ').trim();
  return `${label}: ${message.length > 300 ? `${message.slice(0, 300)}…` : message}`;
}

/**
 * Runs `run`, and while it fails with an error `isTransient` accepts, runs it again after an
 * exponentially growing wait with jitter, until it succeeds or the time budget would be exceeded;
 * then the last error is thrown unchanged, so callers (and Temporal's retry policy) see the
 * original error type. Errors `isTransient` rejects are thrown at once. Only for idempotent
 * operations: an attempt whose reply was lost may have taken effect.
 * @param operation name used in the log lines, e.g. `tracking.recordEpoch`.
 */
export async function retryTransient<T>(
  operation: string,
  run: () => Promise<T>,
  isTransient: (error: unknown) => boolean,
  options: TransientRetryOptions = {},
): Promise<T> {
  const budgetMs = options.budgetMs ?? DEFAULT_TRANSIENT_RETRY_BUDGET_MS;
  const initialDelayMs = options.initialDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const log = options.log ?? ((message: string) => console.warn(message));
  const describe = options.describe ?? describeError;
  const started = now();
  for (let retries = 0; ; retries++) {
    try {
      const result = await run();
      if (retries > 0) log(`${operation} succeeded after ${retries} ${retries === 1 ? 'retry' : 'retries'} (${seconds(now() - started)} s)`);
      return result;
    } catch (error) {
      if (!isTransient(error)) throw error;
      const elapsed = now() - started;
      // Half the exponential step fixed, half random: concurrent callers spread out, yet no wait
      // collapses to zero and hammers a server that is coming back.
      const step = Math.min(maxDelayMs, initialDelayMs * 2 ** retries);
      const delay = Math.round(step / 2 + random() * (step / 2));
      if (elapsed + delay > budgetMs) {
        log(`${operation} failed (${describe(error)}); giving up after ${retries + 1} attempts in ${seconds(elapsed)} s (budget ${seconds(budgetMs)} s)`);
        throw error;
      }
      log(`${operation} failed (${describe(error)}); retry ${retries + 1} in ${seconds(delay)} s (${seconds(elapsed)} s of the ${seconds(budgetMs)} s budget used)`);
      await sleep(delay);
    }
  }
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

/** Node socket error codes that mean the peer went away or is not there yet, not that the request was wrong. */
export const TRANSIENT_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The error and its `cause` chain (at most 8 deep, so a cyclic chain cannot loop). */
export function errorChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null && chain.length < 8 && !chain.includes(current)) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}
