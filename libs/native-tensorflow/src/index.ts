export * from './native-build-layout';
export * from './build-native-binding';
export * from './ensure-native-tensorflow';
export * from './gpu-runtime';
export * from './backend-availability';
