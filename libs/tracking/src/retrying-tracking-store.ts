import { describeError, errorChain, retryTransient, TRANSIENT_SOCKET_CODES, type TransientRetryOptions } from '@detl/config';
import { TrackingError, type TrackingStore } from './tracking-types';

// Prisma's codes for a server that is unreachable, timed out, closed the connection, ran out of
// pooled connections, or aborted a transaction over a write conflict or deadlock.
const TRANSIENT_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2034']);
// What `@prisma/adapter-pg` reports in `meta.driverAdapterError.cause.kind` for the same.
const TRANSIENT_ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TransactionWriteConflict']);
// SQLSTATEs: class 08 (connection exception), 57P01–57P03 (the server is shutting down, crashed or
// is not accepting connections yet: a stop, restart or fail-over), 53300 (too many connections),
// 40001 / 40P01 (serialization failure, deadlock: the transaction may simply run again).
const TRANSIENT_SQLSTATE = /^(08\w{3}|57P0[123]|53300|40001|40P01)$/;
// node-postgres raises these as plain Errors without a code when a socket dies mid-query.
const TRANSIENT_MESSAGES = /Connection terminated|connection error|terminating connection|timeout exceeded when trying to connect|Can't reach database server|Server has closed the connection/i;

function isTransientCode(code: unknown): boolean {
  return typeof code === 'string' && (TRANSIENT_PRISMA_CODES.has(code) || TRANSIENT_SOCKET_CODES.has(code) || TRANSIENT_SQLSTATE.test(code));
}

/**
 * Whether a tracking call failed because the database was unreachable or went away (server stopped,
 * restarted, connection reset, pool starved, write conflict) rather than because the call was wrong.
 * {@link TrackingError}s (invalid argument, not found, conflict) and constraint violations are not
 * transient: the same call would fail the same way.
 */
export function isTransientDatabaseError(error: unknown): boolean {
  for (const link of errorChain(error)) {
    if (link instanceof TrackingError) return false;
    if (typeof link !== 'object' || link === null) continue;
    const candidate = link as { code?: unknown; errorCode?: unknown; message?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown } } } };
    if (isTransientCode(candidate.code) || isTransientCode(candidate.errorCode)) return true;
    const adapterCause = candidate.meta?.driverAdapterError?.cause;
    if (adapterCause !== undefined) {
      if (typeof adapterCause.kind === 'string' && TRANSIENT_ADAPTER_KINDS.has(adapterCause.kind)) return true;
      if (adapterCause.kind === 'postgres' && isTransientCode(adapterCause.code)) return true;
    }
    if (typeof candidate.message === 'string' && TRANSIENT_MESSAGES.test(candidate.message)) return true;
  }
  return false;
}

/**
 * One line for the retry log: Prisma's messages start with a code excerpt of the call site, so the
 * code and the driver's own reason say more (e.g. `P2039 postgres 57P01: terminating connection…`).
 */
export function describeDatabaseError(error: unknown): string {
  const prisma = error as { code?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown; message?: unknown } } } } | null;
  const cause = prisma?.meta?.driverAdapterError?.cause;
  if (typeof prisma?.code === 'string' && cause !== undefined) {
    const parts = [prisma.code, cause.kind, cause.code].filter((part): part is string => typeof part === 'string');
    return typeof cause.message === 'string' ? `${parts.join(' ')}: ${cause.message}` : parts.join(' ');
  }
  return describeError(error);
}

/**
 * The tracking store with every call retried while the database is unreachable (see
 * {@link isTransientDatabaseError}), with bounded exponential backoff and jitter: a PostgreSQL
 * restart or connection loss of a few seconds then costs a training activity a pause, not the
 * epoch it was recording. Safe because every write is idempotent on its natural key (a retried
 * upsert rewrites the same row; a created experiment is found again by its workflow id).
 * Other errors pass through at once.
 */
export function withTransientRetries(tracking: TrackingStore, options: TransientRetryOptions = {}): TrackingStore {
  type Method = Exclude<keyof TrackingStore, 'close'>;
  const retried = <K extends Method>(name: K): TrackingStore[K] =>
    ((...args: unknown[]) =>
      retryTransient(`tracking.${name}`, () => (tracking[name] as (...a: unknown[]) => Promise<unknown>)(...args), isTransientDatabaseError, {
        describe: describeDatabaseError,
        ...options,
      })) as TrackingStore[K];
  // Listed one by one rather than proxied, so a method added to the interface fails to compile here
  // until someone decides whether it may be retried.
  return {
    createExperiment: retried('createExperiment'),
    markExperimentRunning: retried('markExperimentRunning'),
    markExperimentFinished: retried('markExperimentFinished'),
    setDatasetManifest: retried('setDatasetManifest'),
    startStageAttempt: retried('startStageAttempt'),
    finishStageAttempt: retried('finishStageAttempt'),
    recordEpoch: retried('recordEpoch'),
    latestCheckpoint: retried('latestCheckpoint'),
    abandonStaleAttempts: retried('abandonStaleAttempts'),
    recordFold: retried('recordFold'),
    recordArtifacts: retried('recordArtifacts'),
    listExperiments: retried('listExperiments'),
    getExperiment: retried('getExperiment'),
    findExperimentsByIdPrefix: retried('findExperimentsByIdPrefix'),
    countExperimentsByStatus: retried('countExperimentsByStatus'),
    close: () => tracking.close(),
  };
}
