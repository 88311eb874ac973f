export { initBackend, BACKEND_ENV_VARIABLE, type BackendInfo, type BackendAttempt, type BackendPreference } from './backend';
export { registerWasmConvGradients, WASM_CONV_GRADIENT_KERNELS } from './wasm-conv-gradients';
export {
  ARCHITECTURES,
  SPEC_METADATA_KEY,
  buildModel,
  describeArchitecture,
  modelSpecOf,
  validateModelSpec,
  ModelSpecError,
  type Architecture,
  type ArchitectureDescription,
  type ModelSpec,
} from './models';
