/**
 * `@detl/ml/browser`: the part of libs/ml a browser bundle may import (the dashboard's screening
 * page). It reaches tfjs-core, tfjs-layers and `@detl/config/experiment-config` only — no Node
 * built-in, no native binding, no file or process I/O — as tools/module-boundaries.test.ts checks
 * through the dashboard client that imports it. The main entry (`@detl/ml`) re-exports all of this
 * too, so Node code keeps importing from there.
 */
export {
  camWeights,
  createGradCamExplainer,
  type GradCamExplainer,
  type GradCamGradients,
  type GradCamOptions,
  type GradCamResult,
} from './evaluation/grad-cam';
export { ENSEMBLE_OUTPUT_LAYER, memberLogits } from './core/models';
export { classProbabilities, type ScoringOptions } from './core/scoring';
