import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLabelledImages } from './labelled-images';
import { loadModel } from './model-io';
import { runTrainingJob, TRAINING_CHILD_ENTRY, TrainingJobError } from './run-training-job';
import { quadrantImages, testTrainingStage } from './test-data';
import type { FineTuneJob, PretrainJob, TrainingJobEpoch } from './training-job';
import { BACKEND_UNDER_TEST, initBackendUnderTest } from '../test-support/backend-under-test';

const stage = testTrainingStage();

describe('runTrainingJob (forked child)', () => {
  let dir: string;
  let files: { pretrain: string; validation: string; fold: string; test: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'detl-job-'));
    files = { pretrain: join(dir, 'a.bin'), validation: join(dir, 'v.bin'), fold: join(dir, 'b.bin'), test: join(dir, 't.bin') };
    await writeLabelledImages(files.pretrain, quadrantImages(64, 16, 2, 1));
    await writeLabelledImages(files.validation, quadrantImages(16, 16, 2, 2));
    await writeLabelledImages(files.fold, quadrantImages(48, 16, 4, 3));
    await writeLabelledImages(files.test, quadrantImages(20, 16, 4, 4));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const pretrainJob = (): PretrainJob => ({
    kind: 'pretrain',
    model: { architecture: 'small-vgg', widthMultiplier: 0.5, imageSize: 16, channels: 1, numClasses: 2 },
    outputDir: join(dir, 'pretrain'),
    trainFile: files.pretrain,
    validationFile: files.validation,
    stage,
    seed: 7,
    backend: BACKEND_UNDER_TEST,
  });

  const fineTuneJob = (outputDir: string, overrides: Partial<FineTuneJob> = {}): FineTuneJob => ({
    kind: 'fine-tune',
    initialModelDir: join(dir, 'pretrain', 'best'),
    numClasses: 4,
    freeze: 'below-last-conv-block',
    architecture: 'small-vgg',
    outputDir,
    trainFile: files.fold,
    testFile: files.test,
    stage: { ...stage, optimizer: 'sgd', learningRate: 1e-2, schedule: 'constant' },
    seed: 8,
    backend: BACKEND_UNDER_TEST,
    ...overrides,
  });

  it('pretrains, then fine-tunes and evaluates on the test fold, checkpointing every epoch', async () => {
    const epochs: TrainingJobEpoch[] = [];
    const pre = await runTrainingJob(pretrainJob(), { onEpoch: (m) => void epochs.push(m) });
    expect(epochs.map((m) => m.epoch)).toEqual([1, 2]);
    expect(epochs.every((m) => existsSync(join(m.checkpointDir, 'model.json')) && existsSync(join(m.checkpointDir, 'optimizer.json')))).toBe(true);
    expect(pre.backend.backend).toBe(BACKEND_UNDER_TEST);
    expect(pre.bestValidationAccuracy).toBe(Math.max(...pre.epochs.map((m) => m.validationAccuracy as number)));
    expect(pre.test).toBeNull();
    expect(existsSync(join(pre.bestDir, 'model.json'))).toBe(true);

    const fine = await runTrainingJob(fineTuneJob(join(dir, 'fold-0')));
    const test = fine.test;
    expect(test?.predictedClass).toBeInstanceOf(Int32Array);
    expect(test?.predictedClass.length).toBe(20);
    expect(test?.probabilities.every((row) => row.length === 4 && Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5)).toBe(true);
    expect(test?.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(20);
    const diagonal = test?.confusionMatrix.reduce((sum, row, i) => sum + (row[i] as number), 0);
    expect(test?.accuracy).toBeCloseTo((diagonal as number) / 20, 10);

    // The frozen base left the child exactly as it came from pretraining.
    await initBackendUnderTest();
    const pretrained = await loadModel(pre.bestDir);
    const tuned = await loadModel(fine.bestDir);
    const weights = (m: typeof tuned, name: string) => Array.from(m.getLayer(name).getWeights()[0]?.dataSync() ?? []);
    expect(weights(tuned, 'block1_conv1')).toEqual(weights(pretrained, 'block1_conv1'));
    expect(weights(tuned, 'block4_conv1')).not.toEqual(weights(pretrained, 'block4_conv1'));
    expect(tuned.getLayer('block1_conv1').trainable).toBe(false);
    pretrained.dispose();
    tuned.dispose();
  }, 90_000);

  it('resumes a fine-tune from an epoch checkpoint', async () => {
    const outputDir = join(dir, 'fold-0');
    const epochs: number[] = [];
    const resumed = await runTrainingJob(fineTuneJob(outputDir, { resumeFrom: { epoch: 1, modelDir: join(outputDir, 'epoch-1') } }), {
      onEpoch: (m) => void epochs.push(m.epoch),
    });
    expect(epochs).toEqual([2]);
    expect(resumed.epochs.map((m) => m.epoch)).toEqual([2]);
    expect(resumed.test?.confusionMatrix.flat().reduce((a, b) => a + b, 0)).toBe(20);
  }, 60_000);

  it('runs two folds at once in two processes', async () => {
    const started = performance.now();
    const [a, b] = await Promise.all([runTrainingJob(fineTuneJob(join(dir, 'fold-1'))), runTrainingJob(fineTuneJob(join(dir, 'fold-2'), { seed: 9 }))]);
    expect(a.test?.predictedClass.length).toBe(20);
    expect(b.test?.predictedClass.length).toBe(20);
    expect(performance.now() - started).toBeLessThan(60_000);
  }, 60_000);

  it('resumes a pretraining elsewhere from one epoch directory and still keeps the best weights', async () => {
    const first = await runTrainingJob({ ...pretrainJob(), outputDir: join(dir, 'pre-a'), stage: { ...stage, epochs: 3 } });
    const accuracies = first.epochs.map((m) => m.validationAccuracy as number);
    // The toy task is solved in epoch 1, so the best epoch predates the checkpoint resumed from
    // and its weights must travel inside epoch-2/best/.
    expect(first.bestEpoch).toBe(1);
    expect(existsSync(join(dir, 'pre-a', 'epoch-2', 'best', 'weights.bin'))).toBe(true);
    // A worker that died after epoch 2 left only epoch-2/ in S3; another worker resumes into a fresh dir.
    const resumed = await runTrainingJob({
      ...pretrainJob(),
      outputDir: join(dir, 'pre-b'),
      stage: { ...stage, epochs: 3 },
      resumeFrom: { epoch: 2, modelDir: join(dir, 'pre-a', 'epoch-2') },
    });
    expect(resumed.epochs.map((m) => m.epoch)).toEqual([3]);
    expect(resumed.epochs[0]?.validationAccuracy).toBe(accuracies[2]);
    expect(resumed.bestValidationAccuracy).toBe(first.bestValidationAccuracy);
    expect(resumed.bestEpoch).toBe(first.bestEpoch);
    const [a, b] = await Promise.all([readFile(join(first.bestDir, 'weights.bin')), readFile(join(resumed.bestDir, 'weights.bin'))]);
    expect(Buffer.compare(a, b)).toBe(0);
  }, 60_000);

  it("rejects with the child's message and exits non-zero", async () => {
    const job = fineTuneJob(join(dir, 'wrong'), { architecture: 'vgg16' });
    const failure = await runTrainingJob(job).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TrainingJobError);
    expect((failure as TrainingJobError).message).toMatch(/is a small-vgg model, but the experiment expects vgg16/);
    expect((failure as TrainingJobError).childErrorName).toBe('CheckpointMismatchError');
  }, 60_000);

  it('fails the job when the epoch callback fails (e.g. the upload), and when the data file is missing', async () => {
    const job = { ...pretrainJob(), outputDir: join(dir, 'callback'), stage: { ...stage, epochs: 20 } };
    await expect(runTrainingJob(job, { onEpoch: () => Promise.reject(new Error('S3 is down')) })).rejects.toThrow('S3 is down');
    expect(existsSync(join(dir, 'callback', 'epoch-5'))).toBe(false);
    const missing = await runTrainingJob({ ...pretrainJob(), outputDir: join(dir, 'missing'), trainFile: join(dir, 'nope.bin') }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(TrainingJobError);
    expect((missing as Error).message).toMatch(/nope\.bin/);
  }, 60_000);

  it('stops an orphaned child mid-epoch when its parent dies', async () => {
    // An epoch long enough (~20k images) that only the disconnect handler, not a failed epoch
    // report, can end the child within the wait below.
    const bigTrain = join(dir, 'big.bin');
    await writeLabelledImages(bigTrain, quadrantImages(20_000, 16, 2, 5));
    const job = { ...pretrainJob(), outputDir: join(dir, 'orphan'), trainFile: bigTrain, validationFile: undefined };
    // A stand-in worker: forks the child exactly as runTrainingJob does, then dies abruptly.
    const parentScript = join(dir, 'parent.mjs');
    await writeFile(
      parentScript,
      `import { fork } from 'node:child_process';
       const child = fork(${JSON.stringify(TRAINING_CHILD_ENTRY)}, [], { execArgv: ['--import', ${JSON.stringify(pathToFileURL(createRequire(TRAINING_CHILD_ENTRY).resolve('tsx')).href)}], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
       child.send({ type: 'job', job: ${JSON.stringify(job)} });
       console.log(child.pid);
       setTimeout(() => process.exit(0), 3000);`,
    );
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [parentScript], (error, stdout) => (error ? reject(error) : resolve(stdout)));
    });
    const pid = Number(output.trim());
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 30 && alive(); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    const stillAlive = alive();
    if (stillAlive) process.kill(pid, 'SIGKILL');
    expect(stillAlive).toBe(false);
    expect(existsSync(join(dir, 'orphan', 'epoch-1'))).toBe(false);
  }, 60_000);

  it('kills the child on abort', async () => {
    const controller = new AbortController();
    const job = { ...pretrainJob(), outputDir: join(dir, 'aborted'), stage: { ...stage, epochs: 50 } };
    const promise = runTrainingJob(job, { signal: controller.signal, onEpoch: () => controller.abort() });
    await expect(promise).rejects.toMatchObject({ name: 'AbortError' });
    // Killed during epoch 2: its checkpoint never appears.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(existsSync(join(dir, 'aborted', 'epoch-1'))).toBe(true);
    expect(existsSync(join(dir, 'aborted', 'epoch-3'))).toBe(false);
  }, 60_000);
});
