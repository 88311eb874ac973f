export * from './metrics';
export * from './grad-cam';
export * from './localization';
export * from './rendering';
