export * from './experiment-config';
export * from './service-settings';
export * from './sweep-config';
