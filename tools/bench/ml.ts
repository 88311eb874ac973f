import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';
import { runChildForResult } from './support/child-result';

/**
 * `npm run bench -- ml [--only small-vgg@64,vgg16] [--batch 16,32] [--iterations N] [--no-profile]`
 *
 * detl's training and inference throughput ({@link measureThroughput}: the step `trainModel`
 * takes, forward + softmax cross-entropy + backward + Adam, without augmentation) on two tfjs
 * backends, beside a Keras reference of the same networks on `tensorflow-cpu` from PyPI
 * (`tools/bench/keras-bench.py`, pinned in `tools/bench/requirements-ml.txt`, virtualenv created
 * under `tools/bench/.venv-ml`):
 *
 * - `native`: tfjs-node's `tensorflow` backend (libtensorflow from the same tensorflow-cpu wheel,
 *   `libs/native-tensorflow`), once with `TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1` in
 *   its environment and once with TensorFlow's default threads;
 * - `wasm`: tfjs wasm SIMD (1 thread: tfjs disables wasm threads in Node) with detl's conv
 *   gradient kernels;
 * - Keras (graph mode, `train_on_batch`) pinned to 1 intra-op / 1 inter-op thread and with its
 *   default threads.
 *
 * Every peer of every case runs in its own process (peak RSS = that process's VmHWM, CPU
 * utilisation = its CPU time / wall time, which shows whether the thread settings took), and
 * the peers of a case run back to back so that the load other work puts on the machine affects
 * them alike; the load average is recorded around each process. Parameter counts of every peer
 * are compared and a mismatch fails the benchmark. Slow peers (wasm on the big nets) get fewer
 * timed batches; each case records the counts it used. Finally single training steps are
 * profiled per kernel with `tf.profile` (wasm and native), with the number of kernel dispatches.
 */

/** One network/input combination measured by every peer. */
export interface MlBenchCase {
  architecture: 'small-vgg' | 'alexnet' | 'vgg16' | 'resnet50';
  widthMultiplier: number;
  imageSize: number;
  channels: 1 | 3;
  numClasses: number;
  batchSize: number;
  /** Untimed batches first (XNNPACK weight packing, tf.function tracing, oneDNN primitive caches). */
  warmup: number;
  /** Timed batches for native and Keras; medians are reported. */
  iterations: number;
  /** Warmup and timed batches for the wasm peer, which is 5-10x slower. */
  wasmWarmup: number;
  wasmIterations: number;
  /** Why the wasm peer is not run for this case (it cannot), or absent. */
  wasmSkipped?: string;
}

/** The peers every case runs, in order. */
export const ML_PEERS = ['native1Thread', 'nativeDefaultThreads', 'wasm', 'keras1Thread', 'kerasDefaultThreads'] as const;
/** One peer of {@link ML_PEERS}. */
export type MlPeer = (typeof ML_PEERS)[number];

/** What one peer process reports for one case. */
export interface PeerMeasurement {
  params: number;
  trainableParams: number;
  trainImagesPerSecond: number;
  inferImagesPerSecond: number;
  /** Images per CPU-second of the process (median): for 1-thread peers the load-robust measure. */
  trainImagesPerCpuSecond: number | null;
  inferImagesPerCpuSecond: number | null;
  /** VmHWM of the peer's own process: model, optimizer state, runtime. */
  peakRssBytes: number | null;
  /** CPU time of the process over its wall time (≈1 for one busy thread). */
  cpuUtilisation: number | null;
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
  backend: string;
  threads: string;
  stepWallMs: number;
  /** Median wall time of unprofiled steps right after (the profiler adds its own overhead). */
  unprofiledStepMs: number;
  kernelMsTotal: number;
  /** Kernel invocations in the step (tfjs dispatches, scopes excluded). */
  dispatches: number;
  /** Wall time of one tiny (4-element) multiply through tfjs on this backend: the per-dispatch overhead. */
  tinyOpMs: number;
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
const PARTIAL_DIR = path.join(REPO_ROOT, 'bench', 'tmp');
const ONE_THREAD_ENV = { TF_NUM_INTRAOP_THREADS: '1', TF_NUM_INTEROP_THREADS: '1' } as const;

const BASE = { widthMultiplier: 1, channels: 1, numClasses: 2 } as const;
/**
 * Measured 2026-12-02 01:25: the wasm peer aborted (out of wasm heap: `Aborted()` from malloc,
 * `memory access out of bounds`) on VGG-16 and ResNet-50 at 128 px from batch 16 and on small-vgg
 * at 224 px batch 32; batch 16 is still tried each run, batch 32 is not.
 */
const WASM_OUT_OF_MEMORY = 'wasm heap exhausted at batch 16 already (Aborted / memory access out of bounds, run of 2026-12-02 01:25); not retried at batch 32';

/**
 * Batch 16 and 32 of: the CPU default net at 64 / 128 / 224 px, VGG-16 and ResNet-50 at 128 px
 * (width 1, greyscale, 2 classes as in pretraining). Few timed batches on the big nets and for wasm
 * (a VGG-16 step at 128 px takes 10-25 s on one thread) keep the run within ~30-45 min on a shared
 * 2-core machine; `durationSeconds` in ml.json has the last run's time.
 */
export const ML_BENCH_CASES: readonly MlBenchCase[] = (
  [
    { architecture: 'small-vgg', imageSize: 64, warmup: 2, iterations: 8, wasmWarmup: 2, wasmIterations: 5 },
    { architecture: 'small-vgg', imageSize: 128, warmup: 2, iterations: 4, wasmWarmup: 1, wasmIterations: 2 },
    { architecture: 'resnet50', imageSize: 128, warmup: 1, iterations: 2, wasmWarmup: 1, wasmIterations: 1, wasmSkippedAt32: true },
    { architecture: 'small-vgg', imageSize: 224, warmup: 1, iterations: 2, wasmWarmup: 1, wasmIterations: 2, wasmSkippedAt32: true },
    { architecture: 'vgg16', imageSize: 128, warmup: 1, iterations: 2, wasmWarmup: 1, wasmIterations: 1, wasmSkippedAt32: true },
  ] as const
).flatMap(({ wasmSkippedAt32, ...net }: { wasmSkippedAt32?: boolean } & Omit<MlBenchCase, keyof typeof BASE | 'batchSize'>) =>
  // Both batches of a net back to back, cheapest nets first, so a cut-short run has whole nets.
  [16, 32].map((batchSize) => ({ ...BASE, ...net, batchSize, ...(wasmSkippedAt32 && batchSize === 32 ? { wasmSkipped: WASM_OUT_OF_MEMORY } : {}) })),
);

/** Training steps profiled per kernel: backend, threads and case. */
const PROFILES: readonly { backend: 'tensorflow' | 'wasm'; oneThread: boolean; case: string; batchSize: number }[] = [
  { backend: 'wasm', oneThread: true, case: 'small-vgg@64', batchSize: 16 },
  { backend: 'tensorflow', oneThread: true, case: 'small-vgg@64', batchSize: 32 },
  { backend: 'tensorflow', oneThread: true, case: 'vgg16@128', batchSize: 32 },
  { backend: 'tensorflow', oneThread: true, case: 'resnet50@128', batchSize: 32 },
];

function caseName(c: Pick<MlBenchCase, 'architecture' | 'imageSize' | 'widthMultiplier' | 'batchSize'>): string {
  return `${c.architecture}@${c.imageSize}px w${c.widthMultiplier} b${c.batchSize}`;
}

function peakRssOfSelf(): number | null {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) * 1024 : null;
}

// ---------------------------------------------------------------- child processes (detl side)

/** What the parent asks a detl child to run. */
interface DetlChildJob {
  case: MlBenchCase;
  backend: 'tensorflow' | 'wasm';
  warmup: number;
  iterations: number;
}

function cpuSecondsOfSelf(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

async function detlChild(job: DetlChildJob): Promise<Record<string, unknown>> {
  const c = job.case;
  const ml = await import('@detl/ml');
  const tf = await import('@tensorflow/tfjs-core');
  const backend = await ml.initBackend(job.backend);
  if (backend.backend !== job.backend) throw new Error(`asked for the ${job.backend} backend, got ${backend.backend}`);
  const model = ml.buildModel({ architecture: c.architecture, widthMultiplier: c.widthMultiplier, imageSize: c.imageSize, channels: c.channels, numClasses: c.numClasses, seed: 1 });
  const trainableParams = model.trainableWeights.reduce((sum, w) => sum + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
  const cpuBefore = cpuSecondsOfSelf();
  const started = performance.now();
  const result = ml.measureThroughput(model, { batchSize: c.batchSize, warmup: job.warmup, iterations: job.iterations, optimizer: 'adam' });
  const cpuUtilisation = (cpuSecondsOfSelf() - cpuBefore) / ((performance.now() - started) / 1000);
  const threads =
    job.backend === 'wasm'
      ? { wasmThreads: (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount() }
      : {
          // What initBackend applied (it fills in detl's defaults when the environment sets none).
          threads: (backend as { threads?: unknown }).threads ?? null,
          intraOpThreadsEnv: process.env.TF_NUM_INTRAOP_THREADS ?? 'unset',
          interOpThreadsEnv: process.env.TF_NUM_INTEROP_THREADS ?? 'unset',
        };
  return {
    params: model.countParams(),
    trainableParams,
    trainImagesPerSecond: result.trainImagesPerSecond,
    inferImagesPerSecond: result.inferImagesPerSecond,
    trainImagesPerCpuSecond: result.trainImagesPerCpuSecond,
    inferImagesPerCpuSecond: result.inferImagesPerCpuSecond,
    peakRssBytes: peakRssOfSelf(),
    cpuUtilisation: Math.round(cpuUtilisation * 100) / 100,
    warmup: job.warmup,
    iterations: job.iterations,
    backend: backend.backend,
    tfjsVersion: tf.version_core,
    ...threads,
    registeredKernels: backend.registeredKernels,
    replacedGradients: backend.replacedGradients,
    nativeTrainingKernels: ml.installNativeTrainingKernels(),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function profileChild(job: DetlChildJob): Promise<StepProfile> {
  const c = job.case;
  const ml = await import('@detl/ml');
  const tf = await import('@tensorflow/tfjs-core');
  await ml.initBackend(job.backend);
  const model = ml.buildModel({ architecture: c.architecture, widthMultiplier: c.widthMultiplier, imageSize: c.imageSize, channels: c.channels, numClasses: c.numClasses, seed: 1 });
  // What measureThroughput and trainModel do before their first step.
  ml.installNativeTrainingKernels();
  ml.prepareBatchNormForTraining(model);
  const optimizer = ml.createOptimizer({ optimizer: 'adam', learningRate: 1e-4, momentum: 0.9 });
  const variables = model.trainableWeights.map((w) => w.read() as tfc.Variable);
  const x = tf.randomUniform([c.batchSize, c.imageSize, c.imageSize, c.channels], 0, 1, 'float32', 1);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: c.batchSize }, (_, i) => i % c.numClasses), 'int32'), c.numClasses));
  // The same step measureThroughput (and trainModel) takes.
  const step = (): void =>
    tf.tidy(() => {
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tfc.Tensor), true, variables)?.dataSync();
    });
  for (let i = 0; i < Math.max(1, job.warmup); i += 1) step();
  const start = performance.now();
  const profile = await tf.profile(() => step());
  const stepWallMs = performance.now() - start;
  const unprofiled: number[] = [];
  for (let i = 0; i < (c.architecture === 'small-vgg' ? 3 : 1); i += 1) {
    const t = performance.now();
    step();
    unprofiled.push(performance.now() - t);
  }
  const tiny = tf.tensor1d([1, 2, 3, 4]);
  for (let i = 0; i < 100; i += 1) tf.tidy(() => tf.mul(tiny, tiny));
  const tinyStart = performance.now();
  for (let i = 0; i < 2000; i += 1) tf.tidy(() => tf.mul(tiny, tiny));
  const tinyOpMs = (performance.now() - tinyStart) / 2000;
  tiny.dispose();
  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of profile.kernels) {
    const entry = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    entry.calls += 1;
    entry.ms += Number(k.kernelTimeMs);
    byKernel.set(k.name, entry);
  }
  // `<op>__op` entries are custom-gradient scopes (fused
  // conv, softmax cross-entropy, detl's native batch norm) whose time includes the kernels they
  // ran, which are listed on their own: leave them out of the sum.
  const scopes = [...byKernel.entries()].filter(([name]) => name.endsWith('__op'));
  for (const [name] of scopes) byKernel.delete(name);
  const kernelMsTotal = [...byKernel.values()].reduce((sum, k) => sum + k.ms, 0);
  const kernels = [...byKernel.entries()]
    .map(([kernel, k]) => ({ kernel, calls: k.calls, ms: Math.round(k.ms * 10) / 10, share: Math.round((k.ms / kernelMsTotal) * 1000) / 1000 }))
    .sort((a, b) => b.ms - a.ms);
  tf.dispose([x, y]);
  return {
    case: caseName(c),
    backend: tf.getBackend(),
    threads: job.backend === 'wasm' ? '1 (wasm)' : `intra ${process.env.TF_NUM_INTRAOP_THREADS ?? 'default'} / inter ${process.env.TF_NUM_INTEROP_THREADS ?? 'default'}`,
    stepWallMs: Math.round(stepWallMs),
    unprofiledStepMs: Math.round(median(unprofiled)),
    kernelMsTotal: Math.round(kernelMsTotal),
    dispatches: kernels.reduce((sum, k) => sum + k.calls, 0),
    tinyOpMs: Math.round(tinyOpMs * 1000) / 1000,
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

async function runProcess(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ChildOutput> {
  const before = os.loadavg()[0] as number;
  const started = performance.now();
  const result = await runChildForResult<Record<string, unknown>>(command, args, { cwd: REPO_ROOT, env, marker: RESULT_MARKER });
  return {
    result,
    wallSeconds: Math.round((performance.now() - started) / 100) / 10,
    loadAverage: { before, after: os.loadavg()[0] as number },
  };
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
    trainImagesPerCpuSecond: typeof r.trainImagesPerCpuSecond === 'number' ? r.trainImagesPerCpuSecond : null,
    inferImagesPerCpuSecond: typeof r.inferImagesPerCpuSecond === 'number' ? r.inferImagesPerCpuSecond : null,
    peakRssBytes: typeof r.peakRssBytes === 'number' ? r.peakRssBytes : null,
    cpuUtilisation: typeof r.cpuUtilisation === 'number' ? r.cpuUtilisation : null,
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

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a == null || b == null || b === 0 || !Number.isFinite(a) || !Number.isFinite(b) ? null : Math.round((a / b) * 1000) / 1000;
}

function ratiosOf(a: PeerMeasurement | undefined, b: PeerMeasurement | undefined): { train: number | null; infer: number | null; peakRss: number | null } {
  return {
    train: ratio(a?.trainImagesPerSecond, b?.trainImagesPerSecond),
    infer: ratio(a?.inferImagesPerSecond, b?.inferImagesPerSecond),
    peakRss: ratio(a?.peakRssBytes, b?.peakRssBytes),
  };
}

/** The same ratios from images per CPU-second: for 1-thread peers, what each step costs whatever else ran. */
function cpuRatiosOf(a: PeerMeasurement | undefined, b: PeerMeasurement | undefined): { train: number | null; infer: number | null } {
  return { train: ratio(a?.trainImagesPerCpuSecond, b?.trainImagesPerCpuSecond), infer: ratio(a?.inferImagesPerCpuSecond, b?.inferImagesPerCpuSecond) };
}

function parseArgs(args: string[]): { cases: MlBenchCase[]; profile: boolean } {
  let cases = [...ML_BENCH_CASES];
  let profile = true;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    if (arg === '--only') {
      const wanted = (args[(i += 1)] ?? '').split(',');
      cases = cases.filter((c) => wanted.includes(c.architecture) || wanted.includes(`${c.architecture}@${c.imageSize}`));
    } else if (arg === '--batch') {
      const batches = (args[(i += 1)] ?? '').split(',').map(Number);
      cases = cases.filter((c) => batches.includes(c.batchSize));
    } else if (arg === '--iterations') {
      const n = Number(args[(i += 1)]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--iterations must be a positive integer, got ${args[i]}`);
      cases = cases.map((c) => ({ ...c, iterations: n, wasmIterations: Math.min(n, c.wasmIterations) }));
    } else if (arg === '--no-profile') {
      profile = false;
    } else {
      throw new Error(`unknown argument '${arg}'; expected --only <arch[@size],…>, --batch <16,32>, --iterations <n>, --no-profile`);
    }
  }
  if (cases.length === 0) throw new Error('no benchmark case left after --only / --batch');
  return { cases, profile };
}

function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of names) delete env[name];
  return env;
}

/** Native-vs-Keras targets of GitHub issue 7 (item 6), checked at batch 32. */
const TARGETS = { trainAtBatch32: 0.6, trainStretch: 1.0, inferAtBatch32: 0.8 } as const;

/**
 * Runs every case with detl native (1 thread, default threads), detl wasm, Keras 1 thread and
 * Keras default threads (each its own process), checks that all peers have the same parameter
 * counts, profiles detl's step, and returns everything for `bench/results/ml.json`.
 * @throws Error when the parameter counts differ, or a native/Keras peer fails (a failed wasm
 * peer, e.g. out of wasm memory on a big net, is recorded and the bench goes on).
 */
export default async function mlBenchmark(args: string[]): Promise<Record<string, unknown>> {
  const { cases, profile } = parseArgs(args);
  const venv = await ensureVenv();
  const tsx = ['--import', 'tsx', __filename];
  const rows: Record<string, unknown>[] = [];
  const loads: number[] = [];
  const threadVars = ['TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS'];
  for (const c of cases) {
    const name = caseName(c);
    const detlJob = (backend: 'tensorflow' | 'wasm'): string =>
      JSON.stringify({ case: c, backend, warmup: backend === 'wasm' ? c.wasmWarmup : c.warmup, iterations: backend === 'wasm' ? c.wasmIterations : c.iterations } satisfies DetlChildJob);
    const kerasJob = (threads: '1' | 'default'): string => JSON.stringify({ ...c, threads });
    const runs: Record<MlPeer, () => Promise<ChildOutput>> = {
      native1Thread: () => runProcess(process.execPath, [...tsx, CHILD_FLAG, detlJob('tensorflow')], { ...envWithout(...threadVars), DETL_TF_BACKEND: 'tensorflow', ...ONE_THREAD_ENV }),
      nativeDefaultThreads: () => runProcess(process.execPath, [...tsx, CHILD_FLAG, detlJob('tensorflow')], { ...envWithout(...threadVars), DETL_TF_BACKEND: 'tensorflow' }),
      wasm: () => runProcess(process.execPath, [...tsx, CHILD_FLAG, detlJob('wasm')], { ...envWithout(...threadVars), DETL_TF_BACKEND: 'wasm' }),
      keras1Thread: () => runProcess(VENV_PYTHON, [KERAS_SCRIPT, kerasJob('1')], envWithout(...threadVars)),
      kerasDefaultThreads: () => runProcess(VENV_PYTHON, [KERAS_SCRIPT, kerasJob('default')], envWithout(...threadVars)),
    };
    const peers: Partial<Record<MlPeer, PeerMeasurement>> = {};
    const failures: Partial<Record<MlPeer, string>> = {};
    for (const peer of ML_PEERS) {
      if (peer === 'wasm' && c.wasmSkipped) {
        failures[peer] = `skipped: ${c.wasmSkipped}`;
        continue;
      }
      console.log(`[ml] ${name}: ${peer}…`);
      try {
        const m = toMeasurement(await runs[peer]());
        peers[peer] = m;
        loads.push(m.loadAverage.before, m.loadAverage.after);
        console.log(`[ml] ${name}: ${peer} train ${m.trainImagesPerSecond.toFixed(2)} img/s, infer ${m.inferImagesPerSecond.toFixed(1)} img/s, cpu ${m.cpuUtilisation ?? '?'}, ${m.wallSeconds} s`);
      } catch (error) {
        if (peer !== 'wasm') throw error;
        failures[peer] = error instanceof Error ? error.message : String(error);
        console.log(`[ml] ${name}: ${peer} failed: ${failures[peer]?.split('\n')[0]}`);
      }
    }
    const keras1 = peers.keras1Thread as PeerMeasurement;
    for (const [peer, m] of Object.entries(peers)) {
      if (m.params !== keras1.params || m.trainableParams !== keras1.trainableParams) {
        throw new Error(
          `${name}: parameter counts differ, ${peer} ${m.params} (trainable ${m.trainableParams}) vs Keras ${keras1.params} (trainable ${keras1.trainableParams}); the reference is not the same network`,
        );
      }
    }
    rows.push({
      case: name,
      spec: c,
      params: keras1.params,
      trainableParams: keras1.trainableParams,
      ...peers,
      ...(Object.keys(failures).length > 0 ? { failures } : {}),
      ratios: {
        nativeOverKerasGraph1Thread: ratiosOf(peers.native1Thread, peers.keras1Thread),
        nativeOverKerasGraph1ThreadByCpuTime: cpuRatiosOf(peers.native1Thread, peers.keras1Thread),
        nativeOverKerasGraphDefaultThreads: ratiosOf(peers.nativeDefaultThreads, peers.kerasDefaultThreads),
        nativeOverWasm1Thread: ratiosOf(peers.native1Thread, peers.wasm),
        nativeOverWasm1ThreadByCpuTime: cpuRatiosOf(peers.native1Thread, peers.wasm),
        wasmOverKerasGraph1Thread: ratiosOf(peers.wasm, peers.keras1Thread),
      },
    });
    // A long run on a shared machine can be cut short: keep what is done (bench/tmp is ignored by git).
    mkdirSync(PARTIAL_DIR, { recursive: true });
    writeFileSync(path.join(PARTIAL_DIR, 'ml.partial.json'), `${JSON.stringify({ at: new Date().toISOString(), cases: rows }, null, 2)}\n`);
  }
  const profiles: StepProfile[] = [];
  if (profile) {
    for (const p of PROFILES) {
      const c = cases.find((k) => `${k.architecture}@${k.imageSize}` === p.case && k.batchSize === p.batchSize);
      if (!c) continue;
      console.log(`[ml] profiling one ${p.backend} training step of ${caseName(c)} (tf.profile)…`);
      const job: DetlChildJob = { case: c, backend: p.backend, warmup: 1, iterations: 1 };
      const env = { ...envWithout(...threadVars), DETL_TF_BACKEND: p.backend, ...(p.oneThread ? ONE_THREAD_ENV : {}) };
      const out = await runProcess(process.execPath, [...tsx, PROFILE_FLAG, JSON.stringify(job)], env);
      profiles.push(out.result as unknown as StepProfile);
    }
  }
  const batch32 = rows.filter((r) => (r.spec as MlBenchCase).batchSize === 32);
  const targetRows = (key: 'nativeOverKerasGraph1Thread' | 'nativeOverKerasGraph1ThreadByCpuTime' | 'nativeOverKerasGraphDefaultThreads') =>
    batch32.map((r) => {
      const q = (r.ratios as Record<string, { train: number | null; infer: number | null }>)[key];
      return {
        case: r.case,
        train: q?.train ?? null,
        infer: q?.infer ?? null,
        trainTargetMet: (q?.train ?? 0) >= TARGETS.trainAtBatch32,
        trainStretchMet: (q?.train ?? 0) >= TARGETS.trainStretch,
        inferTargetMet: (q?.infer ?? 0) >= TARGETS.inferAtBatch32,
      };
    });
  return {
    description:
      'img/s = median over timed batches, random inputs in [0,1], 1 channel, 2 classes; train = forward + softmax cross-entropy on logits + backward + Adam (lr 1e-4, β 0.9/0.999, ε 1e-7); ' +
      'infer = forward only (detl: model.predict, Keras: predict_on_batch). detl: libs/ml measureThroughput (the trainModel step without augmentation) on tfjs-node (native libtensorflow 2.21) and on tfjs wasm SIMD. ' +
      'Keras: tensorflow-cpu 2.21 (oneDNN on, XLA off as Keras resolves jit_compile=auto on CPU), train_on_batch in graph mode. ' +
      'Each peer runs in its own process; peak RSS is that process VmHWM, cpuUtilisation its CPU time / wall time. Ratios are a / b (train, infer: > 1 means the first is faster; peakRss: > 1 means it uses more). ' +
      'Other sessions ran on the same 2 cores during the run (loadAverage per process), so wall-clock numbers are lower bounds and noisy; the peers of a case ran back to back. ' +
      '*ImagesPerCpuSecond and the *ByCpuTime ratios use the process CPU time (all threads) per batch instead of wall time: for the 1-thread peers they measure what a step costs and hardly move with other load, so they are the primary 1-thread comparison here; with several threads they are not speeds.',
    peers: {
      native1Thread: 'detl on @tensorflow/tfjs-node 4.22 (binding built against the tensorflow-cpu 2.21 wheel, libs/native-tensorflow), TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1',
      nativeDefaultThreads: 'same without the thread variables: detl initBackend defaults (intra-op = every core, 2 here; inter-op 1; see threads per case)',
      wasm: 'detl on tfjs 4.22 wasm (SIMD, 1 thread) with detl conv and batch-norm gradient kernels',
      keras1Thread: 'Keras 3 on tensorflow-cpu (tools/bench/requirements-ml.txt), graph mode, intra_op = inter_op = 1 thread',
      kerasDefaultThreads: 'same, TensorFlow default threads (2 cores here)',
    },
    iterations:
      'timed batches per case (after warmup batches): spec.iterations for native and Keras, spec.wasmIterations for wasm (1 for VGG-16 and ResNet-50 at 128 px: one wasm step there takes 15-45 s); train and infer are each timed that many times',
    targets: {
      definition: `native / Keras graph at batch 32: training ≥ ${TARGETS.trainAtBatch32} (stretch ${TARGETS.trainStretch}), inference ≥ ${TARGETS.inferAtBatch32}`,
      oneThread: targetRows('nativeOverKerasGraph1Thread'),
      oneThreadByCpuTime: targetRows('nativeOverKerasGraph1ThreadByCpuTime'),
      defaultThreads: targetRows('nativeOverKerasGraphDefaultThreads'),
    },
    venv: { path: path.relative(REPO_ROOT, VENV), ...venv },
    loadAverage: {
      note: '1-minute load average on 2 cores, sampled before and after every peer process',
      min: loads.length ? Math.min(...loads) : null,
      median: loads.length ? median(loads) : null,
      max: loads.length ? Math.max(...loads) : null,
      atEnd: os.loadavg(),
    },
    cases: rows,
    profiles,
  };
}

async function childMain(flag: string, json: string): Promise<void> {
  const job = JSON.parse(json) as DetlChildJob;
  const result = flag === CHILD_FLAG ? await detlChild(job) : await profileChild(job);
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
