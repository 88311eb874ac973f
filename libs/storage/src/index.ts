export * from './directory-transfer';
export * from './object-key';
export * from './object-store';
export * from './s3-object-store';
export * from './retrying-object-store';
export * from './storage-layout';
export * from './grad-cam-gallery';
