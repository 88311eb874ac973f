export { initBackend, nativeBackendProblem, trainingRuntimeOf, BackendUnavailableError, BACKEND_ENV_VARIABLE, TENSORFLOW_THREAD_VARIABLES, type BackendInfo, type BackendAttempt, type BackendPreference, type BackendThreads, type InitBackendOptions, type TrainingRuntime } from './backend';
export { registerTensorflowTransformKernel, fixCpuTransformKernel } from './transform-kernels';
export { registerWasmConvGradients, WASM_CONV_GRADIENT_KERNELS } from './wasm-conv-gradients';
export { installBatchNormGradient } from './batch-norm-gradient';
export { installNativeTrainingKernels, batchNormInTraining, nativeBatchNormAvailable } from './native-training-kernels';
export {
  ARCHITECTURES,
  SPEC_METADATA_KEY,
  ENSEMBLE_OUTPUT_LAYER,
  buildModel,
  memberLogits,
  describeArchitecture,
  modelSpecOf,
  validateModelSpec,
  ModelSpecError,
  type Architecture,
  type ArchitectureDescription,
  type ModelSpec,
} from './models';
export { writeLabelledImages, readLabelledImages, assertLabelledImages, type LabelledImages } from './labelled-images';
export { SeededRandom } from './random';
export {
  trainModel,
  evaluateModel,
  augmentBatch,
  createOptimizer,
  imagesToTensor,
  learningRateAt,
  outputClasses,
  predictProbabilities,
  prepareBatchNormForTraining,
  restoreWeights,
  snapshotWeights,
  type AugmentationOptions,
  type BatchMetrics,
  type BestWeights,
  type EpochMetrics,
  type ModelEvaluation,
  type TrainingStage,
  type TrainOptions,
  type TrainResult,
  type WeightSnapshot,
} from './train';
export { balancedClassWeights, classWeightsFor, decayKernels, decayedKernels, trainingLoss, type TrainingLevers } from './training-levers';
export { prepareForFineTuning, assertArchitecture, CheckpointMismatchError, type FineTuneOptions, type FreezeMode } from './fine-tune';
export {
  CHECKPOINT_FILES,
  saveModel,
  loadModel,
  loadOptimizer,
  saveModelToStore,
  loadModelFromStore,
  loadOptimizerFromStore,
  modelToFiles,
  modelFromFiles,
  optimizerFromFiles,
  type LoadModelOptions,
  type SaveModelOptions,
} from './model-io';
export {
  runTrainingJob,
  TrainingJobError,
  TRAINING_CHILD_ENTRY,
  type RunTrainingJobOptions,
} from './run-training-job';
export { runTrainingJobInProcess, evaluateOnTest } from './training-runner';
export type { TrainingJob, PretrainJob, FineTuneJob, TrainingJobResult, TrainingJobEpoch, TestEvaluation } from './training-job';
export { measureThroughput, type ThroughputOptions, type ThroughputResult } from './throughput';
export { classProbabilities, type ScoringOptions } from './scoring';
