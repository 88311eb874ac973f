/**
 * Error names no retry can fix: bad data, bad configuration, a model that cannot be built or a
 * checkpoint of another architecture. Workflows pass this list to Temporal's retry policy.
 */
export const NON_RETRYABLE_ERRORS: readonly string[] = ['DatasetError', 'ConfigError', 'ModelSpecError', 'CheckpointMismatchError'];
