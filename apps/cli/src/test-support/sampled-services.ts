import path from 'node:path';
import { parseExperimentConfig, serviceEnvironment, type ExperimentConfig } from '@detl/config';
import { startTestStores, type TestStores } from '@detl/activities/testing';
import { sampleDataset } from '@detl/data';
import { initBackend } from '@detl/ml';

/** The image size of {@link startSampledServices}' sampling. */
export const SAMPLED_IMAGE_SIZE = 32;

/** Throw-away services holding a real sampling, and the environment `bin/detl` runs on them with. */
export interface SampledServices extends TestStores {
  /** The sampling's experiment config (seed 3, 2 folds, 32 px degraded to 16 px). */
  config: ExperimentConfig;
  /** Its manifest in the bucket. */
  manifestKey: string;
  /** `process.env` plus the services' settings; DETL_HOME is `<home>/home`. */
  env: NodeJS.ProcessEnv;
}

/**
 * Starts the {@link TestStores}, stores a real synthetic sampling (32 px, degraded to 16 px, so that
 * commands must read size and degrade from its manifest) and initialises the wasm backend: what the
 * tests of commands that read a trained run (`detl predict`, `detl evaluate`) record runs on with
 * `recordTrainedRun`. The sampling's working files stay in `<home>/sampling`.
 */
export async function startSampledServices(name: string): Promise<SampledServices> {
  const stores = await startTestStores(name);
  try {
    const env = { ...process.env, ...serviceEnvironment({ home: path.join(stores.home, 'home'), databaseUrl: stores.databaseUrl, s3: stores.s3 }) };
    const config = parseExperimentConfig({
      seed: 3,
      dataset: { source: { kind: 'synthetic', imagesPerClass: 5, pretrainImagesPerClass: 5 }, imageSize: SAMPLED_IMAGE_SIZE, folds: 2, degradeToPixels: 16 },
    });
    const sampled = await sampleDataset({ config, store: stores.store, workDir: path.join(stores.home, 'sampling') });
    await initBackend('wasm');
    return { ...stores, config, manifestKey: sampled.manifestKey, env };
  } catch (error) {
    await stores.stop();
    throw error;
  }
}
