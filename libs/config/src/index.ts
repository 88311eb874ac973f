export * from './experiment-config';
export * from './service-settings';
export * from './sweep-config';
export * from './transient-retry';
export * from './seeded-random';
