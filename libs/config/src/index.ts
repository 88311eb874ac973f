export * from './experiment-config';
export * from './service-settings';
