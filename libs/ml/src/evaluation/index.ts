export * from './metrics';
export * from './grad-cam';
