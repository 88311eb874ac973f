export * from './activities';
export * from './activity-types';
