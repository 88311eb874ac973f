export * from './core';
export * from './evaluation';
