import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from '@detl/storage';
import { assertArchitecture } from './fine-tune';
import type { Architecture } from './models';

/** File names of a checkpoint directory / key prefix. */
export const CHECKPOINT_FILES = {
  model: 'model.json',
  weights: 'weights.bin',
  optimizer: 'optimizer.json',
  optimizerWeights: 'optimizer.bin',
} as const;

/** Options when saving a checkpoint. */
export interface SaveModelOptions {
  /** Also save this optimizer's state (Adam moments, momentum accumulators) for an exact resume. */
  optimizer?: tf.Optimizer;
}

/** Options when loading a checkpoint. */
export interface LoadModelOptions {
  /** Reject a checkpoint of another architecture with an error naming both. */
  architecture?: Architecture;
}

interface OptimizerFile {
  className: string;
  config: Record<string, unknown>;
  weightSpecs: tf.io.WeightsManifestEntry[];
  /** Adam's running β1^t, β2^t (float32 values), see {@link adamPowers}. */
  adamPowers?: [number, number];
}

type AdamInternals = { accBeta1?: tf.Variable; accBeta2?: tf.Variable };

/**
 * tfjs' Adam saves only the step count and rebuilds β^t with pow() on load, which differs from
 * the running product in the last float32 bits; with 1 - β2^t ≈ 3e-3 early on, that shifts every
 * update by ~1e-4 relative. Saving the two scalars makes a resumed run bit-identical.
 */
function adamPowers(optimizer: tf.Optimizer): [number, number] | undefined {
  const { accBeta1, accBeta2 } = optimizer as unknown as AdamInternals;
  if (!(accBeta1 instanceof tf.Variable) || !(accBeta2 instanceof tf.Variable)) return undefined;
  return [accBeta1.dataSync()[0] as number, accBeta2.dataSync()[0] as number];
}

function joinWeightData(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
}

/**
 * The checkpoint's files in the tfjs layers format: `model.json` (topology, weights manifest
 * pointing at `weights.bin`, detl metadata) loads in a browser with `tf.loadLayersModel`.
 */
export async function modelToFiles(model: LayersModel, options: SaveModelOptions = {}): Promise<Map<string, Uint8Array>> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (saved) => {
      artifacts = saved;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts) throw new Error(`model '${model.name}' produced no artifacts when saved`);
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers`,
    convertedBy: null,
    weightsManifest: [{ paths: [`./${CHECKPOINT_FILES.weights}`], weights: artifacts.weightSpecs ?? [] }],
    ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
  };
  const files = new Map<string, Uint8Array>([
    [CHECKPOINT_FILES.model, Buffer.from(JSON.stringify(modelJson), 'utf8')],
    [CHECKPOINT_FILES.weights, joinWeightData(artifacts.weightData)],
  ]);
  if (options.optimizer) {
    const named = await options.optimizer.getWeights();
    const encoded = await tf.io.encodeWeights(named);
    const file: OptimizerFile = {
      className: options.optimizer.getClassName(),
      config: options.optimizer.getConfig() as Record<string, unknown>,
      weightSpecs: encoded.specs,
    };
    const powers = options.optimizer.getClassName() === 'Adam' ? adamPowers(options.optimizer) : undefined;
    if (powers) file.adamPowers = powers;
    files.set(CHECKPOINT_FILES.optimizer, Buffer.from(JSON.stringify(file), 'utf8'));
    files.set(CHECKPOINT_FILES.optimizerWeights, joinWeightData(encoded.data));
  }
  return files;
}

type ReadFile = (name: string) => Promise<Uint8Array | null>;

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/**
 * Loads a model from checkpoint files read through `read`.
 * @param where the directory or `s3://` prefix, for messages.
 */
export async function modelFromFiles(read: ReadFile, where: string, options: LoadModelOptions = {}): Promise<LayersModel> {
  const jsonBytes = await read(CHECKPOINT_FILES.model);
  if (!jsonBytes) throw new Error(`${where}: no ${CHECKPOINT_FILES.model} (not a model checkpoint)`);
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(Buffer.from(jsonBytes).toString('utf8')) as tf.io.ModelJSON;
  } catch (error) {
    throw new Error(`${where}/${CHECKPOINT_FILES.model}: not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const specs = manifest.flatMap((group) => group.weights);
    const buffers: ArrayBuffer[] = [];
    for (const path of manifest.flatMap((group) => group.paths)) {
      const name = path.replace(/^\.\//, '');
      const bytes = await read(name);
      if (!bytes) throw new Error(`${where}: ${name} listed in ${CHECKPOINT_FILES.model} is missing`);
      buffers.push(toArrayBuffer(bytes));
    }
    return [specs, buffers.length === 1 ? (buffers[0] as ArrayBuffer) : buffers];
  });
  let model: LayersModel;
  try {
    model = await loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (error) {
    throw new Error(`${where}: cannot load the model (${error instanceof Error ? error.message : String(error)})`);
  }
  if (options.architecture) {
    try {
      assertArchitecture(model, options.architecture, `checkpoint ${where}`);
    } catch (error) {
      model.dispose();
      throw error;
    }
  }
  return model;
}

/**
 * Rebuilds the optimizer saved beside a model, with its state, or null when none was saved.
 * Its moments are positional: continue it on a model with the same trainable weights in the
 * same order (the same architecture and freeze mode).
 */
export async function optimizerFromFiles(read: ReadFile, where: string): Promise<tf.Optimizer | null> {
  const jsonBytes = await read(CHECKPOINT_FILES.optimizer);
  if (!jsonBytes) return null;
  const file = JSON.parse(Buffer.from(jsonBytes).toString('utf8')) as OptimizerFile;
  const weightBytes = await read(CHECKPOINT_FILES.optimizerWeights);
  if (!weightBytes) throw new Error(`${where}: ${CHECKPOINT_FILES.optimizer} without ${CHECKPOINT_FILES.optimizerWeights}`);
  const c = file.config;
  let optimizer: tf.Optimizer;
  switch (file.className) {
    case 'Adam':
      optimizer = tf.train.adam(c['learningRate'] as number, c['beta1'] as number, c['beta2'] as number, c['epsilon'] as number);
      break;
    case 'Momentum':
      optimizer = tf.train.momentum(c['learningRate'] as number, c['momentum'] as number, c['useNesterov'] as boolean);
      break;
    case 'SGD':
      optimizer = tf.train.sgd(c['learningRate'] as number);
      break;
    default:
      throw new Error(`${where}: optimizer ${file.className} is not one detl trains with`);
  }
  const tensors = tf.io.decodeWeights(toArrayBuffer(weightBytes), file.weightSpecs);
  await optimizer.setWeights(file.weightSpecs.map((spec) => ({ name: spec.name, tensor: tensors[spec.name] as tf.Tensor })));
  tf.dispose(Object.values(tensors));
  const { accBeta1, accBeta2 } = optimizer as unknown as AdamInternals;
  if (file.adamPowers && accBeta1 instanceof tf.Variable && accBeta2 instanceof tf.Variable) {
    const [beta1Power, beta2Power] = file.adamPowers;
    tf.tidy(() => {
      accBeta1.assign(tf.scalar(beta1Power));
      accBeta2.assign(tf.scalar(beta2Power));
    });
  }
  return optimizer;
}

/** Saves a model (and optionally its optimizer) to a local directory; returns the written paths. */
export async function saveModel(model: LayersModel, dir: string, options: SaveModelOptions = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, bytes] of await modelToFiles(model, options)) {
    const path = join(dir, name);
    await writeFile(path, bytes);
    written.push(path);
  }
  return written;
}

function diskReader(dir: string): ReadFile {
  return async (name) => {
    try {
      return await readFile(join(dir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  };
}

/** Loads a model saved by {@link saveModel}. */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LayersModel> {
  return modelFromFiles(diskReader(dir), dir, options);
}

/** Loads the optimizer saved beside a model by {@link saveModel}, or null. */
export async function loadOptimizer(dir: string): Promise<tf.Optimizer | null> {
  return optimizerFromFiles(diskReader(dir), dir);
}

function storeKey(prefix: string, name: string): string {
  return `${prefix.replace(/\/+$/, '')}/${name}`;
}

/** Saves a model (and optionally its optimizer) under `prefix/` in the object store. */
export async function saveModelToStore(model: LayersModel, store: ObjectStore, prefix: string, options: SaveModelOptions = {}): Promise<StoredObject[]> {
  const stored: StoredObject[] = [];
  for (const [name, bytes] of await modelToFiles(model, options)) {
    const type = name.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    stored.push(await store.putObject(storeKey(prefix, name), bytes, type));
  }
  return stored;
}

function storeReader(store: ObjectStore, prefix: string): ReadFile {
  return async (name) => {
    try {
      return await store.getObject(storeKey(prefix, name));
    } catch (error) {
      if (error instanceof ObjectNotFoundError || (error as Error).name === 'ObjectNotFoundError') return null;
      throw error;
    }
  };
}

/** Loads a model saved by {@link saveModelToStore}. */
export async function loadModelFromStore(store: ObjectStore, prefix: string, options: LoadModelOptions = {}): Promise<LayersModel> {
  return modelFromFiles(storeReader(store, prefix), store.uri(prefix), options);
}

/** Loads the optimizer saved beside a model by {@link saveModelToStore}, or null. */
export async function loadOptimizerFromStore(store: ObjectStore, prefix: string): Promise<tf.Optimizer | null> {
  return optimizerFromFiles(storeReader(store, prefix), store.uri(prefix));
}

