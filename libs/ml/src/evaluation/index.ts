export * from './metrics';
export * from './cross-validation';
export * from './grad-cam';
export * from './grad-cam-survey';
export * from './localization';
export * from './rendering';
export * from './group-metrics';
export * from './pointing-game-report';
