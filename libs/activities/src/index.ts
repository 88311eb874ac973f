export * from './activities';
export * from './activity-types';
export * from './non-retryable';
export * from './sweep-activities';
