export * from './experiment-config';
export * from './service-settings';
export * from './task-queues';
export * from './sweep-config';
export * from './transient-retry';
export * from './seeded-random';
export * from './stage-table';
