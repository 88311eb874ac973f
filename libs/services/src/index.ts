export * from './embedded-postgres-process';
export * from './embedded-services';
export * from './home-services';
export * from './managed-process';
export * from './minio';
export * from './net';
export * from './temporal-dev-server';
export * from './tool-binary';
