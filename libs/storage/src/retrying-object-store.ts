import { errorChain, retryTransient, TRANSIENT_SOCKET_CODES, type TransientRetryOptions } from '@detl/config';
import { InvalidObjectKeyError } from './object-key';
import { ObjectNotFoundError, type ObjectStore } from './object-store';

// S3 error codes that mean "the server is busy or briefly broken", whatever status carried them.
const TRANSIENT_S3_CODES = new Set(['InternalError', 'ServiceUnavailable', 'SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeoutException', 'XMinioServerNotInitialized']);
// The SDK's names for a request that never got an answer. Not AbortError: that is a caller giving up.
const TRANSIENT_ERROR_NAMES = new Set(['TimeoutError', 'RequestTimeout']);
const TRANSIENT_MESSAGES = /socket hang up|ECONNREFUSED|ECONNRESET|other side closed|premature close|Client network socket disconnected/i;

/**
 * Whether an object-store call failed because S3 was unreachable or answered with a server error
 * (5xx, throttling, a connection refused or reset, a timeout) rather than because the request was
 * wrong. 4xx answers (NoSuchKey, AccessDenied, a bad key, a checksum mismatch) are not transient.
 */
export function isTransientStorageError(error: unknown): boolean {
  for (const link of errorChain(error)) {
    if (link instanceof ObjectNotFoundError || link instanceof InvalidObjectKeyError) return false;
    if (typeof link !== 'object' || link === null) continue;
    const candidate = link as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: unknown } };
    const status = candidate.$metadata?.httpStatusCode;
    if (typeof status === 'number') {
      // An answer from the server: its status decides (429 is throttling, 5xx the server's fault).
      if (status >= 500 || status === 429) return true;
      if (typeof candidate.name === 'string' && TRANSIENT_S3_CODES.has(candidate.name)) return true;
      if (status >= 400) return false;
    }
    if (typeof candidate.name === 'string' && (TRANSIENT_S3_CODES.has(candidate.name) || TRANSIENT_ERROR_NAMES.has(candidate.name))) return true;
    if (typeof candidate.code === 'string' && TRANSIENT_SOCKET_CODES.has(candidate.code)) return true;
    if (typeof candidate.message === 'string' && TRANSIENT_MESSAGES.test(candidate.message)) return true;
  }
  return false;
}

/**
 * The object store with every call retried while S3 is unreachable or failing with server errors
 * (see {@link isTransientStorageError}), with bounded exponential backoff and jitter, so a MinIO
 * restart or a burst of 5xx mid-upload costs a pause instead of the activity's work. Safe because
 * every operation is idempotent: puts replace the whole object, deletes of missing keys succeed.
 *
 * This is the outer of two layers: the S3 client itself retries each request a few times within
 * about a second (`maxAttempts`, the SDK's standard mode), which absorbs single dropped requests;
 * this layer waits out outages of seconds to minutes that exhaust those attempts. Each retry here
 * therefore starts a fresh round of SDK attempts, which is why its waits start at half a second.
 */
export function withTransientObjectStoreRetries(store: ObjectStore, options: TransientRetryOptions = {}): ObjectStore {
  const run = <T>(operation: string, call: () => Promise<T>): Promise<T> => retryTransient(`s3.${operation}`, call, isTransientStorageError, options);
  return {
    bucket: store.bucket,
    putObject: (key, body, contentType) => run(`putObject ${key}`, () => store.putObject(key, body, contentType)),
    getObject: (key) => run(`getObject ${key}`, () => store.getObject(key)),
    headObject: (key) => run(`headObject ${key}`, () => store.headObject(key)),
    listKeys: (prefix) => run(`listKeys ${prefix}`, () => store.listKeys(prefix)),
    deleteObject: (key) => run(`deleteObject ${key}`, () => store.deleteObject(key)),
    uri: (key) => store.uri(key),
  };
}
