import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import sharp from 'sharp';
import { CROP_POLICY, mapLimit, measurePreprocessing, preprocessImage, RESIZE_KERNEL, type PreprocessOptions } from '@detl/data';
import { parseBenchArgs } from './support/bench-args';

/**
 * `npm run bench -- data [--repeats=5] [--sizes=64,128,224] [--sample=200] [--limit=N] [--no-parallel]`:
 * decode + greyscale + centre-crop + resize throughput (img/s) of libs/data's own preprocessing
 * (`measurePreprocessing` / `preprocessImage`, sharp) on the real cxr-real X-rays, side by side with
 * Pillow doing the same work on the same files in a Python process this benchmark starts
 * (`tools/bench/pillow-bench.py`, in `tools/bench/.venv` from `requirements-data.txt`).
 *
 * Repeats are interleaved (detl, Pillow, detl, Pillow, …; all sizes and settings inside each repeat)
 * so that other load on the machine hits both peers alike. Rows: one image at a time on one thread
 * (sharp `concurrency(1)`, Pillow in one process), and each side's parallel setting (libs/data's
 * `sampleDataset` way: 4 images in flight, sharp's default concurrency; Pillow: a process pool with
 * one worker per CPU). Also checks that both produce the same pixels (mean absolute difference).
 */

const REPO = path.resolve(__dirname, '../..');
const CLASSES = ['normal', 'pneumonia', 'other_disease', 'covid'] as const;
/** In-flight images of libs/data's `sampleDataset` preprocessing (`mapLimit(chunk, 4, …)` in sample.ts). */
const SAMPLE_DATASET_IN_FLIGHT = 4;

/** Median, extremes and every value of a series of repeats. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

interface PassResult {
  images: number;
  seconds: number;
  cpuSeconds: number | null;
}

interface Options {
  repeats: number;
  sizes: number[];
  sample: number;
  limit: number | null;
  parallel: boolean;
}

type Case = 'single-thread' | 'parallel' | 'decode-only' | 'fixed-overhead';

interface CaseSpec {
  kind: Case;
  size: number;
}

function parseArgs(args: readonly string[]): Options {
  const options: Options = { repeats: 5, sizes: [64, 128, 224], sample: 200, limit: null, parallel: true };
  for (const { arg, key, value, int } of parseBenchArgs(args)) {
    if (key === 'repeats') options.repeats = int();
    else if (key === 'sample') options.sample = int();
    else if (key === 'limit') options.limit = int();
    else if (key === 'no-parallel') options.parallel = false;
    else if (key === 'sizes') {
      options.sizes = value.split(',').map((s) => Number(s));
      if (options.sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new Error(`--sizes needs positive integers, got "${value}"`);
    } else throw new Error(`unknown argument ${arg} (use --repeats=N --sizes=64,128,224 --sample=N --limit=N --no-parallel)`);
  }
  if (options.repeats < 3) throw new Error('--repeats must be at least 3 (median, min and max of repeats are reported)');
  return options;
}

function datasetRoot(): string {
  const shared = process.env.DETL_SHARED_DATASETS ?? path.resolve(REPO, '../shared/datasets');
  const root = path.join(shared, 'cxr-real');
  if (!existsSync(root)) {
    throw new Error(
      `bench data: the real chest X-rays are not at ${root} (expected cxr-real under ${shared}; set DETL_SHARED_DATASETS to the folder that holds cxr-real)`,
    );
  }
  return root;
}

function listImages(root: string): string[] {
  const files: string[] = [];
  for (const className of CLASSES) {
    const dir = path.join(root, className);
    if (!existsSync(dir)) throw new Error(`bench data: ${dir} is missing (cxr-real has one folder per class: ${CLASSES.join(', ')})`);
    for (const file of readdirSync(dir).sort()) if (/\.png$/i.test(file)) files.push(path.join(dir, file));
  }
  if (files.length === 0) throw new Error(`bench data: no PNG files under ${root}`);
  return files;
}

/** Creates `tools/bench/.venv` and installs the pinned requirements when they changed; returns its python. */
function ensureVenv(): string {
  const venv = path.join(__dirname, '.venv');
  const python = path.join(venv, 'bin', 'python');
  const requirements = path.join(__dirname, 'requirements-data.txt');
  const stamp = path.join(venv, '.requirements-data.sha256');
  const hash = createHash('sha256').update(readFileSync(requirements)).digest('hex');
  if (!existsSync(python)) {
    console.error(`bench data: creating ${path.relative(REPO, venv)} (python3 -m venv)`);
    try {
      execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    } catch (error) {
      throw new Error(`bench data: could not create the Pillow virtualenv with python3 -m venv (${(error as Error).message})`);
    }
  }
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== hash) {
    console.error(`bench data: pip install -r ${path.relative(REPO, requirements)}`);
    execFileSync(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', '-r', requirements], { stdio: 'inherit' });
    writeFileSync(stamp, hash);
  }
  return python;
}

/** The Pillow process: one JSON request per line in, one answer per line out. */
class PillowPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly waiting: ((line: string) => void)[] = [];
  private exited: string | null = null;

  constructor(python: string) {
    this.child = spawn(python, [path.join(__dirname, 'pillow-bench.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (line) => this.waiting.shift()?.(line));
    this.child.on('exit', (code, signal) => {
      this.exited = `pillow-bench.py exited (${signal ?? `code ${code}`})`;
      for (const resolve of this.waiting.splice(0)) resolve(JSON.stringify({ ok: false, error: this.exited }));
    });
  }

  async request<T>(message: Record<string, unknown>): Promise<T> {
    if (this.exited) throw new Error(this.exited);
    const line = await new Promise<string>((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(`${JSON.stringify(message)}\n`);
    });
    const answer = JSON.parse(line) as { ok: boolean; error?: string } & T;
    if (!answer.ok) throw new Error(`Pillow peer: ${answer.error ?? 'failed'}`);
    return answer;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    await done;
    this.lines.close();
  }
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
  const round = (n: number): number => Math.round(n * 1000) / 1000;
  return { median: round(median), min: round(sorted[0] ?? NaN), max: round(sorted[sorted.length - 1] ?? NaN), runs: values.map(round) };
}

async function timeDetl(spec: CaseSpec, files: readonly string[], tiny: readonly string[], defaultConcurrency: number): Promise<PassResult> {
  const options: PreprocessOptions = { imageSize: spec.size, degradeToPixels: null };
  const cpu0 = process.cpuUsage();
  let images: number;
  let seconds: number;
  if (spec.kind === 'fixed-overhead') {
    // Diagnostic: the whole preprocessImage pipeline on a 1x1 PNG, as often as there are real files.
    sharp.concurrency(1);
    ({ images, seconds } = await measurePreprocessing(tiny, options));
  } else if (spec.kind === 'single-thread') {
    sharp.concurrency(1);
    ({ images, seconds } = await measurePreprocessing(files, options));
  } else if (spec.kind === 'parallel') {
    sharp.concurrency(defaultConcurrency);
    const first = files[0];
    if (first) await preprocessImage(await readFile(first), options);
    const start = process.hrtime.bigint();
    await mapLimit(files, SAMPLE_DATASET_IN_FLIGHT, async (file) => preprocessImage(await readFile(file), options));
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
    images = files.length;
  } else {
    // Diagnostic: libvips' PNG decode to raw pixels alone, same read and call path, nothing else.
    sharp.concurrency(1);
    const start = process.hrtime.bigint();
    for (const file of files) await sharp(await readFile(file), { failOn: 'truncated' }).raw().toBuffer();
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
    images = files.length;
  }
  const cpu = process.cpuUsage(cpu0);
  sharp.concurrency(defaultConcurrency);
  return { images, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

async function timePillow(spec: CaseSpec, peer: PillowPeer, tiny: readonly string[]): Promise<PassResult> {
  const mode = spec.kind === 'parallel' ? 'parallel' : 'single';
  const op = spec.kind === 'decode-only' ? 'decode' : 'pipeline';
  const files = spec.kind === 'fixed-overhead' ? tiny : undefined;
  return peer.request<PassResult>({ cmd: 'run', size: spec.size, mode, op, workers: os.cpus().length, files });
}

interface Agreement {
  size: number;
  images: number;
  meanAbsDiff: number;
  maxAbsDiff: number;
  shareIdentical: number;
  shareWithin1: number;
}

async function compareOutputs(sample: readonly string[], sizes: readonly number[], peer: PillowPeer): Promise<Agreement[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'detl-bench-data-'));
  try {
    const results: Agreement[] = [];
    for (const size of sizes) {
      await peer.request({ cmd: 'dump', size, files: sample, dir });
      let sum = 0;
      let max = 0;
      let identical = 0;
      let within1 = 0;
      let pixels = 0;
      for (const [index, file] of sample.entries()) {
        const ours = await preprocessImage(await readFile(file), { imageSize: size, degradeToPixels: null });
        const theirs = readFileSync(path.join(dir, `${index}.raw`));
        if (theirs.length !== ours.length) throw new Error(`${file}: Pillow gave ${theirs.length} bytes at ${size} px, detl ${ours.length}`);
        for (let i = 0; i < ours.length; i += 1) {
          const d = Math.abs((ours[i] ?? 0) - (theirs[i] ?? 0));
          sum += d;
          if (d > max) max = d;
          if (d === 0) identical += 1;
          if (d <= 1) within1 += 1;
        }
        pixels += ours.length;
      }
      results.push({
        size,
        images: sample.length,
        meanAbsDiff: Math.round((sum / pixels) * 10000) / 10000,
        maxAbsDiff: max,
        shareIdentical: Math.round((identical / pixels) * 10000) / 10000,
        shareWithin1: Math.round((within1 / pixels) * 10000) / 10000,
      });
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function caseLabel(spec: CaseSpec): string {
  return spec.kind === 'decode-only' || spec.kind === 'fixed-overhead' ? `${spec.kind} (diagnostic)` : `${spec.kind} ${spec.size}px`;
}

/**
 * Runs the benchmark (see the file comment for arguments) and returns the results `tools/bench/run.ts`
 * writes to `bench/results/data.json`.
 * @throws Error when cxr-real is absent, the virtualenv cannot be made, or the Pillow peer fails.
 */
export default async function benchData(args: string[]): Promise<Record<string, unknown>> {
  const options = parseArgs(args);
  const root = datasetRoot();
  const all = listImages(root);
  const files = options.limit ? all.slice(0, options.limit) : all;
  const step = Math.max(1, Math.floor(files.length / options.sample));
  const sample = files.filter((_, i) => i % step === 0).slice(0, options.sample);
  const python = ensureVenv();
  const defaultConcurrency = sharp.concurrency();
  const peer = new PillowPeer(python);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'detl-bench-data-'));
  const tinyFile = path.join(scratch, 'one-pixel.png');
  writeFileSync(tinyFile, await sharp(Buffer.from([128]), { raw: { width: 1, height: 1, channels: 1 } }).png().toBuffer());
  const tiny = files.map(() => tinyFile);
  const loadBefore = os.loadavg();
  try {
    const pillowInfo = await peer.request<Record<string, unknown>>({ cmd: 'init', files });
    const specs: CaseSpec[] = [];
    for (const size of options.sizes) {
      specs.push({ kind: 'single-thread', size });
      if (options.parallel) specs.push({ kind: 'parallel', size });
    }
    specs.push({ kind: 'decode-only', size: 0 }, { kind: 'fixed-overhead', size: 1 });

    // Untimed warm pass on both sides: page cache, module loading, sharp's first pipeline.
    await timeDetl({ kind: 'single-thread', size: options.sizes[0] ?? 64 }, files, tiny, defaultConcurrency);
    await timePillow({ kind: 'single-thread', size: options.sizes[0] ?? 64 }, peer, tiny);

    const passes = new Map<string, { detl: PassResult[]; pillow: PassResult[] }>(specs.map((s) => [caseLabel(s), { detl: [], pillow: [] }]));
    const loadPerRepeat: number[][] = [];
    for (let repeat = 0; repeat < options.repeats; repeat += 1) {
      loadPerRepeat.push(os.loadavg());
      for (const spec of specs) {
        const entry = passes.get(caseLabel(spec));
        if (!entry) continue;
        // A B A B …, with the first peer alternating between repeats so neither always runs second.
        const detlFirst = repeat % 2 === 0;
        if (detlFirst) entry.detl.push(await timeDetl(spec, files, tiny, defaultConcurrency));
        entry.pillow.push(await timePillow(spec, peer, tiny));
        if (!detlFirst) entry.detl.push(await timeDetl(spec, files, tiny, defaultConcurrency));
        const d = entry.detl.at(-1);
        const p = entry.pillow.at(-1);
        if (d && p) console.error(`repeat ${repeat + 1}/${options.repeats} ${caseLabel(spec)}: detl ${(d.images / d.seconds).toFixed(0)} img/s, Pillow ${(p.images / p.seconds).toFixed(0)} img/s`);
      }
    }

    const rows = specs.map((spec) => {
      const entry = passes.get(caseLabel(spec)) ?? { detl: [], pillow: [] };
      const detl = spread(entry.detl.map((r) => r.images / r.seconds));
      const pillow = spread(entry.pillow.map((r) => r.images / r.seconds));
      const paired = spread(entry.detl.map((r, i) => {
        const p = entry.pillow[i];
        return p ? r.images / r.seconds / (p.images / p.seconds) : NaN;
      }));
      const cpuShare = (results: PassResult[]): number | null => {
        const shares = results.filter((r) => r.cpuSeconds !== null).map((r) => (r.cpuSeconds ?? 0) / r.seconds);
        return shares.length ? spread(shares).median : null;
      };
      const cpuPerImage = (results: PassResult[]): Spread | null => {
        const ms = results.filter((r) => r.cpuSeconds !== null).map((r) => ((r.cpuSeconds ?? 0) * 1000) / r.images);
        return ms.length ? spread(ms) : null;
      };
      const detlCpu = cpuPerImage(entry.detl);
      const pillowCpu = cpuPerImage(entry.pillow);
      return {
        case: spec.kind,
        imageSize: spec.kind === 'decode-only' ? null : spec.size,
        imageFiles: spec.kind === 'fixed-overhead' ? `${tinyFile} (1x1 grey PNG, ${files.length} times)` : `cxr-real (${files.length})`,
        detlImagesPerSecond: detl,
        pillowImagesPerSecond: pillow,
        ratioDetlToPillow: { ofMedians: Math.round((detl.median / pillow.median) * 1000) / 1000, paired },
        cpuSecondsPerWallSecond: { detl: cpuShare(entry.detl), pillow: cpuShare(entry.pillow) },
        cpuMillisecondsPerImage: {
          detl: detlCpu,
          pillow: pillowCpu,
          ratioDetlToPillowOfMedians: detlCpu && pillowCpu ? Math.round((detlCpu.median / pillowCpu.median) * 1000) / 1000 : null,
        },
      };
    });

    const agreement = await compareOutputs(sample, options.sizes, peer);
    const loadAfter = os.loadavg();

    console.error('\ncase                     | detl img/s (median, min–max) | Pillow img/s (median, min–max) | detl/Pillow | CPU ms/img detl, Pillow');
    for (const row of rows) {
      const label = row.case === 'decode-only' || row.case === 'fixed-overhead' ? row.case : `${row.case} ${row.imageSize}px`;
      const d = row.detlImagesPerSecond;
      const p = row.pillowImagesPerSecond;
      const cpu = row.cpuMillisecondsPerImage;
      console.error(
        `${label.padEnd(24)} | ${d.median.toFixed(0)} (${d.min.toFixed(0)}–${d.max.toFixed(0)}) | ${p.median.toFixed(0)} (${p.min.toFixed(0)}–${p.max.toFixed(0)}) | ${row.ratioDetlToPillow.ofMedians} | ${cpu.detl?.median.toFixed(2) ?? '-'}, ${cpu.pillow?.median.toFixed(2) ?? '-'}`,
      );
    }

    return {
      dataset: {
        root,
        images: files.length,
        format: 'cxr-real: 224x224 8-bit single-channel PNG (so the 224 px rows decode and copy: neither side resamples when the size already matches)',
      },
      method: {
        work: 'read file + decode + EXIF orientation + alpha flattened onto black + greyscale + centre-crop to square + resize + 8-bit grey pixels out, per image',
        cropPolicy: CROP_POLICY,
        resize: {
          detl: `sharp resize(size, size, { fit: 'cover', position: 'centre', kernel: '${RESIZE_KERNEL}' }) → libvips vips_resize (reduce with a Lanczos a=3 kernel; no box pre-shrink at these factors)`,
          pillow: 'Image.resize((size, size), Image.Resampling.LANCZOS, box=centred square) — Pillow’s LANCZOS is Lanczos a=3 (support 3), reducing_gap=None (no box pre-shrink)',
        },
        rows: {
          'single-thread': `detl: sharp.concurrency(1), measurePreprocessing() from libs/data (one image at a time, one warm-up image); Pillow: one process, one image at a time, one warm-up image`,
          parallel: `detl: libs/data's sampleDataset setting — mapLimit(files, ${SAMPLE_DATASET_IN_FLIGHT}, preprocessImage) with sharp's default concurrency (${defaultConcurrency} here), libuv threadpool ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}; Pillow: multiprocessing Pool(${os.cpus().length}) (fork), pool.map(chunksize=16), bytes returned to the parent`,
          'decode-only': 'diagnostic, one thread: detl sharp(bytes).raw().toBuffer(); Pillow Image.open(path).load() + tobytes()',
          'fixed-overhead': 'diagnostic, one thread: each side’s full pipeline (measurePreprocessing / preprocess) on a 1x1 grey PNG file at size 1, as many times as there are real files — the per-image cost that does not depend on pixels',
        },
        repeats: options.repeats,
        order: 'each repeat runs every case; within a case the peers alternate (detl then Pillow on even repeats, Pillow then detl on odd), after one untimed warm pass per side',
        ratio: 'detl img/s ÷ Pillow img/s: ofMedians = ratio of the medians; paired = per-repeat ratios of the interleaved pairs',
        cpuMillisecondsPerImage: 'process CPU time per image (median, min, max over repeats); less sensitive to other load than img/s, since time spent preempted is not counted',
        cpuSecondsPerWallSecond: 'process CPU time (all threads; for the Pillow pool the workers from /proc) ÷ wall time, median: ~1 means one busy core, lower means waiting or preempted',
      },
      peers: {
        detl: {
          sharp: sharp.versions.sharp,
          libvips: sharp.versions.vips,
          libpng: sharp.versions.png,
          zlibNg: sharp.versions['zlib-ng'],
          simd: sharp.simd(),
          defaultConcurrency,
          concurrencyNote: 'libs/data never sets sharp.concurrency; sharp defaults to 1 on glibc Linux without jemalloc (this machine) and to the core count elsewhere',
        },
        pillow: pillowInfo,
      },
      results: rows,
      agreement: {
        description: `detl preprocessImage vs Pillow on ${sample.length} images (every ${step}th file), per size: mean / max absolute difference in grey levels (0–255) and the share of pixels equal or within 1`,
        perSize: agreement,
      },
      load: { before: loadBefore, after: loadAfter, atEachRepeatStart: loadPerRepeat, cpus: os.cpus().length },
    };
  } finally {
    await peer.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
