/**
 * Error names no retry can fix: bad data, bad configuration, a model that cannot be built, a
 * checkpoint of another architecture, or a backend the config demands that this worker lacks. Workflows pass this list to Temporal's retry policy.
 */
export const NON_RETRYABLE_ERRORS: readonly string[] = ['DatasetError', 'ConfigError', 'ModelSpecError', 'CheckpointMismatchError', 'BackendUnavailableError'];
