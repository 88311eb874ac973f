import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';

/**
 * `npm run bench -- ml [--only small-vgg,vgg16] [--iterations N] [--no-profile]`
 *
 * detl's training and inference throughput (tfjs wasm, 1 thread, {@link measureThroughput}: the
 * step `trainModel` takes, forward + softmax cross-entropy + backward + Adam, without augmentation)
 * beside a Keras reference of the same networks on `tensorflow-cpu` from PyPI
 * (`tools/bench/keras-bench.py`, pinned in `tools/bench/requirements-ml.txt`, virtualenv created
 * under `tools/bench/.venv-ml`), with TensorFlow pinned to 1 intra-op / 1 inter-op thread and with
 * its default threads. Every peer of every case runs in its own process (peak RSS = that
 * process's VmHWM), interleaved case by case so that the load other work puts on the machine
 * affects all peers of a case alike; the load average is recorded around each process. Parameter
 * counts of both implementations are compared and a mismatch fails the benchmark. Finally one
 * training step of detl is profiled per kernel with `tf.profile`.
 */

/** One network/input combination measured by every peer. */
export interface MlBenchCase {
  architecture: 'small-vgg' | 'alexnet' | 'vgg16' | 'resnet50';
  widthMultiplier: number;
  imageSize: number;
  channels: 1 | 3;
  numClasses: number;
  batchSize: number;
  /** Untimed batches first (XNNPACK weight packing, tf.function tracing). */
  warmup: number;
  /** Timed batches; medians are reported. */
  iterations: number;
}

/** What one peer process reports for one case. */
export interface PeerMeasurement {
  params: number;
  trainableParams: number;
  trainImagesPerSecond: number;
  inferImagesPerSecond: number;
  /** VmHWM of the peer's own process: model, optimizer state, runtime. */
  peakRssBytes: number | null;
  /** 1-minute load average just before and just after the process ran. */
  loadAverage: { before: number; after: number };
  wallSeconds: number;
  [key: string]: unknown;
}

/** Time spent in one tfjs kernel during one profiled training step. */
export interface KernelShare {
  kernel: string;
  calls: number;
  ms: number;
  /** Share of the summed kernel time. */
  share: number;
}

/** Per-kernel breakdown of one detl training step. */
export interface StepProfile {
  case: string;
  stepWallMs: number;
  kernelMsTotal: number;
  kernels: KernelShare[];
  /** Custom-gradient op scopes, whose time overlaps the kernels they ran (not in the sum). */
  scopesExcluded: { scope: string; calls: number; ms: number }[];
}

const CHILD_FLAG = '--detl-ml-child';
const PROFILE_FLAG = '--detl-ml-profile';
const RESULT_MARKER = 'DETL_ML_RESULT ';
const BENCH_DIR = __dirname;
const REPO_ROOT = path.resolve(BENCH_DIR, '../..');
const VENV = path.join(BENCH_DIR, '.venv-ml');
const VENV_PYTHON = path.join(VENV, 'bin', 'python');
const REQUIREMENTS = path.join(BENCH_DIR, 'requirements-ml.txt');
const KERAS_SCRIPT = path.join(BENCH_DIR, 'keras-bench.py');

const BASE = { widthMultiplier: 1, channels: 1, numClasses: 2, batchSize: 16 } as const;

/**
 * The cases that fit here in ~15 minutes: every family at 64 px and width 1 (greyscale, 2 classes as
 * in pretraining), plus the CPU default net and AlexNet at 128 px. VGG-16 trains at ~2 img/s on
 * wasm, so it gets fewer timed batches.
 */
export const ML_BENCH_CASES: readonly MlBenchCase[] = [
  { ...BASE, architecture: 'small-vgg', imageSize: 64, warmup: 2, iterations: 6 },
  { ...BASE, architecture: 'small-vgg', imageSize: 128, warmup: 2, iterations: 5 },
  { ...BASE, architecture: 'alexnet', imageSize: 64, warmup: 2, iterations: 5 },
  { ...BASE, architecture: 'alexnet', imageSize: 128, warmup: 2, iterations: 4 },
  { ...BASE, architecture: 'resnet50', imageSize: 64, warmup: 2, iterations: 4 },
  { ...BASE, architecture: 'vgg16', imageSize: 64, warmup: 1, iterations: 3 },
];

/** Cases whose detl training step is profiled per kernel. */
const PROFILE_CASES = ['small-vgg@64', 'vgg16@64'];

function caseName(c: MlBenchCase): string {
  return `${c.architecture}@${c.imageSize}px w${c.widthMultiplier} b${c.batchSize}`;
}

function peakRssOfSelf(): number | null {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) * 1024 : null;
}

// ---------------------------------------------------------------- child processes (detl side)

async function detlChild(c: MlBenchCase): Promise<Record<string, unknown>> {
  const ml = await import('@detl/ml');
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const backend = await ml.initBackend('wasm');
  const model = ml.buildModel({ architecture: c.architecture, widthMultiplier: c.widthMultiplier, imageSize: c.imageSize, channels: c.channels, numClasses: c.numClasses, seed: 1 });
  const trainableParams = model.trainableWeights.reduce((sum, w) => sum + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
  const result = ml.measureThroughput(model, { batchSize: c.batchSize, warmup: c.warmup, iterations: c.iterations, optimizer: 'adam' });
  return {
    params: model.countParams(),
    trainableParams,
    trainImagesPerSecond: result.trainImagesPerSecond,
    inferImagesPerSecond: result.inferImagesPerSecond,
    peakRssBytes: peakRssOfSelf(),
    backend: backend.backend,
    wasmThreads: wasm.getThreadsCount(),
    registeredKernels: backend.registeredKernels,
    replacedGradients: backend.replacedGradients,
  };
}

async function profileChild(c: MlBenchCase): Promise<StepProfile> {
  const ml = await import('@detl/ml');
  const tf = await import('@tensorflow/tfjs-core');
  await ml.initBackend('wasm');
  const model = ml.buildModel({ architecture: c.architecture, widthMultiplier: c.widthMultiplier, imageSize: c.imageSize, channels: c.channels, numClasses: c.numClasses, seed: 1 });
  const optimizer = ml.createOptimizer({ optimizer: 'adam', learningRate: 1e-4, momentum: 0.9 });
  const variables = model.trainableWeights.map((w) => w.read() as tfc.Variable);
  const x = tf.randomUniform([c.batchSize, c.imageSize, c.imageSize, c.channels], 0, 1, 'float32', 1);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: c.batchSize }, (_, i) => i % c.numClasses), 'int32'), c.numClasses));
  // The same step measureThroughput (and trainModel) takes.
  const step = (): void =>
    tf.tidy(() => {
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tfc.Tensor), true, variables)?.dataSync();
    });
  for (let i = 0; i < Math.max(1, c.warmup); i += 1) step();
  const start = performance.now();
  const profile = await tf.profile(() => step());
  const stepWallMs = performance.now() - start;
  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of profile.kernels) {
    const entry = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    entry.calls += 1;
    entry.ms += Number(k.kernelTimeMs);
    byKernel.set(k.name, entry);
  }
  // `<op>__op` entries are custom-gradient scopes (fused conv, softmax cross-entropy) whose time
  // includes the kernels they ran, which are listed on their own: leave them out of the sum.
  const scopes = [...byKernel.entries()].filter(([name]) => name.endsWith('__op'));
  for (const [name] of scopes) byKernel.delete(name);
  const kernelMsTotal = [...byKernel.values()].reduce((sum, k) => sum + k.ms, 0);
  const kernels = [...byKernel.entries()]
    .map(([kernel, k]) => ({ kernel, calls: k.calls, ms: Math.round(k.ms * 10) / 10, share: Math.round((k.ms / kernelMsTotal) * 1000) / 1000 }))
    .sort((a, b) => b.ms - a.ms);
  tf.dispose([x, y]);
  return {
    case: caseName(c),
    stepWallMs: Math.round(stepWallMs),
    kernelMsTotal: Math.round(kernelMsTotal),
    kernels,
    scopesExcluded: scopes.map(([scope, k]) => ({ scope, calls: k.calls, ms: Math.round(k.ms * 10) / 10 })),
  };
}

// ---------------------------------------------------------------- parent

interface ChildOutput {
  result: Record<string, unknown>;
  wallSeconds: number;
  loadAverage: { before: number; after: number };
}

function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ChildOutput> {
  const before = os.loadavg()[0] as number;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_MARKER)) ?? stdout.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) {
        reject(new Error(`${path.basename(args[args.length - 2] ?? command)} exited with ${code ?? signal}:\n${stderr.split('\n').slice(-25).join('\n')}`));
        return;
      }
      resolve({
        result: JSON.parse(line.startsWith(RESULT_MARKER) ? line.slice(RESULT_MARKER.length) : line) as Record<string, unknown>,
        wallSeconds: Math.round((performance.now() - started) / 100) / 10,
        loadAverage: { before, after: os.loadavg()[0] as number },
      });
    });
  });
}

function toMeasurement(out: ChildOutput): PeerMeasurement {
  const r = out.result;
  const { trainSamples: _t, inferSamples: _i, ...rest } = r;
  return {
    ...rest,
    params: Number(r.params),
    trainableParams: Number(r.trainableParams),
    trainImagesPerSecond: Number(r.trainImagesPerSecond),
    inferImagesPerSecond: Number(r.inferImagesPerSecond),
    peakRssBytes: typeof r.peakRssBytes === 'number' ? r.peakRssBytes : null,
    loadAverage: out.loadAverage,
    wallSeconds: out.wallSeconds,
  };
}

/** Creates (or refreshes, when requirements-ml.txt changed) the Keras virtualenv. */
async function ensureVenv(): Promise<{ created: boolean; seconds: number }> {
  const started = performance.now();
  const hash = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex');
  const stamp = path.join(VENV, '.requirements-sha256');
  if (existsSync(VENV_PYTHON) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return { created: false, seconds: 0 };
  console.log(`[ml] creating ${path.relative(REPO_ROOT, VENV)} from ${path.relative(REPO_ROOT, REQUIREMENTS)} (tensorflow-cpu is ~270 MB)`);
  const run = (command: string, args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn(command, args, { stdio: 'inherit' });
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`))));
    });
  if (!existsSync(VENV_PYTHON)) await run('python3', ['-m', 'venv', VENV]);
  writeFileSync(path.join(VENV, '.gitignore'), '*\n');
  await run(VENV_PYTHON, ['-m', 'pip', 'install', '--quiet', '-r', REQUIREMENTS]);
  writeFileSync(stamp, hash);
  return { created: true, seconds: Math.round((performance.now() - started) / 1000) };
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : Math.round((a / b) * 1000) / 1000;
}

function ratiosOf(detl: PeerMeasurement, peer: PeerMeasurement): Record<string, number | null> {
  return {
    train: ratio(detl.trainImagesPerSecond, peer.trainImagesPerSecond),
    infer: ratio(detl.inferImagesPerSecond, peer.inferImagesPerSecond),
    peakRss: ratio(detl.peakRssBytes, peer.peakRssBytes),
  };
}

function parseArgs(args: string[]): { cases: MlBenchCase[]; profile: boolean } {
  let cases = [...ML_BENCH_CASES];
  let profile = true;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === '--only') {
      const wanted = (args[(i += 1)] ?? '').split(',');
      cases = cases.filter((c) => wanted.includes(c.architecture) || wanted.includes(`${c.architecture}@${c.imageSize}`));
    } else if (arg === '--iterations') {
      const n = Number(args[(i += 1)]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--iterations must be a positive integer, got ${args[i]}`);
      cases = cases.map((c) => ({ ...c, iterations: n }));
    } else if (arg === '--no-profile') {
      profile = false;
    } else {
      throw new Error(`unknown argument '${arg}'; expected --only <arch[@size],…>, --iterations <n>, --no-profile`);
    }
  }
  if (cases.length === 0) throw new Error('no benchmark case left after --only');
  return { cases, profile };
}

/**
 * Runs every case with detl, Keras 1 thread and Keras default threads (each its own process),
 * checks that both implementations have the same parameter counts, profiles detl's step, and
 * returns everything for `bench/results/ml.json`.
 * @throws Error when a peer fails or the Keras and detl parameter counts differ.
 */
export default async function mlBenchmark(args: string[]): Promise<Record<string, unknown>> {
  const { cases, profile } = parseArgs(args);
  const venv = await ensureVenv();
  const tsx = ['--import', 'tsx', __filename];
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const name = caseName(c);
    const json = JSON.stringify(c);
    console.log(`[ml] ${name}: detl (tfjs wasm, 1 thread)…`);
    const detl = toMeasurement(await runProcess(process.execPath, [...tsx, CHILD_FLAG, json]));
    console.log(`[ml] ${name}: Keras, 1 thread…`);
    const keras1 = toMeasurement(await runProcess(VENV_PYTHON, [KERAS_SCRIPT, JSON.stringify({ ...c, threads: '1' })]));
    console.log(`[ml] ${name}: Keras, default threads…`);
    const kerasDefault = toMeasurement(await runProcess(VENV_PYTHON, [KERAS_SCRIPT, JSON.stringify({ ...c, threads: 'default' })]));
    console.log(
      `[ml] ${name}: params detl ${detl.params} (trainable ${detl.trainableParams}) / Keras ${keras1.params} (trainable ${keras1.trainableParams}); ` +
        `train img/s detl ${detl.trainImagesPerSecond.toFixed(2)} / Keras-1t ${keras1.trainImagesPerSecond.toFixed(2)} / Keras-default ${kerasDefault.trainImagesPerSecond.toFixed(2)}; ` +
        `infer ${detl.inferImagesPerSecond.toFixed(1)} / ${keras1.inferImagesPerSecond.toFixed(1)} / ${kerasDefault.inferImagesPerSecond.toFixed(1)}`,
    );
    if (detl.params !== keras1.params || detl.trainableParams !== keras1.trainableParams) {
      throw new Error(
        `${name}: parameter counts differ, detl ${detl.params} (trainable ${detl.trainableParams}) vs Keras ${keras1.params} (trainable ${keras1.trainableParams}); the reference is not the same network`,
      );
    }
    rows.push({
      case: name,
      spec: c,
      params: detl.params,
      trainableParams: detl.trainableParams,
      detl,
      keras1Thread: keras1,
      kerasDefaultThreads: kerasDefault,
      ratioDetlOverKeras1Thread: ratiosOf(detl, keras1),
      ratioDetlOverKerasDefaultThreads: ratiosOf(detl, kerasDefault),
    });
  }
  const profiles: StepProfile[] = [];
  if (profile) {
    for (const wanted of PROFILE_CASES) {
      const c = cases.find((k) => `${k.architecture}@${k.imageSize}` === wanted);
      if (!c) continue;
      console.log(`[ml] profiling one detl training step of ${caseName(c)} (tf.profile)…`);
      const out = await runProcess(process.execPath, [...tsx, PROFILE_FLAG, JSON.stringify(c)]);
      profiles.push(out.result as unknown as StepProfile);
    }
  }
  return {
    description:
      'img/s = median over timed batches of batch 16, random inputs in [0,1]; train = forward + softmax cross-entropy on logits + backward + Adam (lr 1e-4, β 0.9/0.999, ε 1e-7); ' +
      'infer = forward only (detl: model.predict, Keras: predict_on_batch). detl: tfjs wasm SIMD, 1 thread, measureThroughput. Keras: tensorflow-cpu (oneDNN on, XLA off as Keras resolves jit_compile=auto on CPU), ' +
      'train_on_batch. Each peer runs in its own process; peak RSS is that process VmHWM. Ratios are detl / Keras (train/infer: > 1 means detl faster; peakRss: > 1 means detl uses more). ' +
      'Other work ran on the same 2 cores during the run (see loadAverage per process), so absolute numbers are lower bounds; the peers of a case ran back to back.',
    peers: {
      detl: 'tfjs 4.22 wasm backend (SIMD, 1 thread) with detl conv and batch-norm gradient kernels, libs/ml measureThroughput',
      keras1Thread: 'Keras 3 on tensorflow-cpu (tools/bench/requirements-ml.txt), intra_op = inter_op = 1 thread',
      kerasDefaultThreads: 'same, TensorFlow default threads (2 cores here)',
    },
    venv: { path: path.relative(REPO_ROOT, VENV), ...venv },
    loadAverageAtEnd: os.loadavg(),
    cases: rows,
    profiles,
  };
}

async function childMain(flag: string, json: string): Promise<void> {
  const c = JSON.parse(json) as MlBenchCase;
  const result = flag === CHILD_FLAG ? await detlChild(c) : await profileChild(c);
  process.stdout.write(`${RESULT_MARKER}${JSON.stringify(result)}\n`);
}

const [, entry, flag, payload] = process.argv;
if (entry && path.resolve(entry) === __filename && (flag === CHILD_FLAG || flag === PROFILE_FLAG) && payload) {
  childMain(flag, payload).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error instanceof Error ? (error.stack ?? error.message) : error);
      process.exit(1);
    },
  );
}
