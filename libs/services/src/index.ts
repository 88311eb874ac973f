export * from './embedded-postgres-process';
export * from './embedded-services';
export * from './managed-process';
export * from './minio';
export * from './net';
export * from './temporal-dev-server';
export * from './test-minio';
export * from './tool-binary';
