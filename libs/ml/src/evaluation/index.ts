export * from './metrics';
export * from './cross-validation';
export * from './grad-cam';
export * from './localization';
export * from './rendering';
