import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DATA_B_CLASSES, serviceEnvironment } from '@detl/config';
import { generateSyntheticDataset, preprocessImage } from '@detl/data';
import { createGradCamExplainer, ensembleGradCam, initBackend, loadModelFromStore } from '@detl/ml';
import { startTestMinio, type TestMinio } from '@detl/services/testing';
import { createObjectStore, type S3ObjectStore } from '@detl/storage';
import { createRunHistoryQueries, createSweepStore, createTrackingStore, type RunHistoryQueries, type SweepStore, type TrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureClientBuilt, startDashboard, type RunningDashboard } from './server/start-dashboard';
import { seedRuns, type SeededRuns } from './test-support/seed-runs';
import { SCREENING_IMAGE_SIZE, seedScreening } from './test-support/seed-screening';

const CHROMIUM = '/usr/bin/chromium';
const DETL_BIN = path.resolve(__dirname, '../../../bin/detl');
/** Where each page's screenshot goes; a reviewed set is committed under apps/dashboard/screenshots/. */
const SCREENSHOT_DIR = process.env['DETL_DASHBOARD_SCREENSHOTS'] ?? path.resolve(__dirname, '../dist/screenshots');
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium; CI installs it)`);

/** `bin/detl` as a user runs it, without blocking this process (it serves nothing, but MinIO's client is ours). */
function runDetl(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(DETL_BIN, args, { env, cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(!hasChromium)('dashboard in Chromium', () => {
  let database: TestDatabase;
  let minio: TestMinio;
  let tracking: TrackingStore;
  let sweeps: SweepStore;
  let queries: RunHistoryQueries;
  let runs: SeededRuns;
  let dashboard: RunningDashboard;
  let browser: BrowserContext;
  let page: Page;
  let profile: string;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let store: S3ObjectStore;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureClientBuilt();
    [database, minio] = await Promise.all([createTestDatabase(), startTestMinio()]);
    tracking = createTrackingStore(database.url);
    sweeps = createSweepStore(database.url);
    queries = createRunHistoryQueries(database.url);
    // Real S3 (MinIO): the dashboard streams models and images from it, and `detl predict` reads the same bucket.
    store = createObjectStore(minio.settings);
    await store.ensureBucket();
    runs = await seedRuns(tracking, store, sweeps);
    work = mkdtempSync(path.join(tmpdir(), 'detl-dashboard-browser-'));
    await seedScreening({ tracking, store, runId: runs.baseline, folds: 5, overlayKeys: runs.overlayKeys, workDir: path.join(work, 'sampling') });
    env = { ...process.env, ...serviceEnvironment({ home: path.join(work, 'home'), databaseUrl: database.url, s3: minio.settings }) };
    dashboard = await startDashboard({ queries, store, port: 0 });
    profile = mkdtempSync(path.join(tmpdir(), 'detl-chromium-'));
    // A fresh profile per run (Playwright passes it as --user-data-dir), so no state leaks between runs.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1366, height: 900 },
      // Root needs --no-sandbox; the rest keep Chromium from dialling out on a closed network.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('pageerror', (error) => pageErrors.push(error.message));
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    await queries?.close();
    await sweeps?.close();
    await tracking?.close();
    await Promise.all([database?.drop(), minio?.stop()]);
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const shot = (name: string) => page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
  const rowNames = () => page.locator('table.runs tbody tr td:nth-child(2) a').allTextContents();
  // The node types are the DOM's; this project type-checks against Node only.
  const naturalWidths = (selector: string) =>
    page.locator(selector).evaluateAll((nodes) => nodes.map((node) => (node as unknown as { complete: boolean; naturalWidth: number }).complete && (node as unknown as { naturalWidth: number }).naturalWidth));

  it('runs list → filter → open a run → heatmap, curves and Grad-CAM images render → compare two runs', async () => {
    await page.goto(`${dashboard.url}/`);
    await page.locator('table.runs tbody tr').nth(3).waitFor();
    expect(await rowNames()).toEqual(['running resnet', 'broken folder run', 'scratch alexnet', 'baseline small-vgg']);
    await shot('runs');

    await page.selectOption('select[name=status]', 'succeeded');
    await page.waitForURL(/status=succeeded/);
    await expect.poll(rowNames).toEqual(['scratch alexnet', 'baseline small-vgg']);
    await page.fill('input[name=q]', 'baseline');
    await page.waitForURL(/q=baseline/);
    await expect.poll(rowNames).toEqual(['baseline small-vgg']);
    await shot('runs-filtered');

    await page.click('text=baseline small-vgg');
    await page.waitForURL(`${dashboard.url}/runs/${runs.baseline}`);
    const heatmap = page.locator('#confusion svg').last();
    await heatmap.waitFor();
    // 16 cells, each with its count and row share.
    expect(await page.locator('#confusion svg g[aria-label=cell] rect').count()).toBe(16);
    const cellText = await page.locator('#confusion svg g[aria-label=text] text').allTextContents();
    expect(cellText).toHaveLength(16);
    expect(cellText.every((text) => /^\d+\d+%$/.test(text.replace(/\s/g, '')))).toBe(true);
    expect(await page.locator('.curve-card').count()).toBe(6);
    expect(await page.locator('.curve-card svg g[aria-label=line] path').count()).toBeGreaterThanOrEqual(12);
    expect(await page.locator('#folds svg g[aria-label=bar] rect').count()).toBe(5);
    await expect.poll(() => page.locator('table.attempts tr.failed').count()).toBe(1);
    // The gallery: per overlay the network input (32 px, from the sampling's shard) and the overlay (64 px),
    // with true and predicted class, probability and fold.
    await page.locator('.gallery figure').nth(3).waitFor();
    await expect.poll(() => naturalWidths('.gallery img')).toEqual([32, 64, 32, 64, 32, 64, 32, 64]);
    const captions = await page.locator('.gallery figcaption').allTextContents();
    expect(captions[1]).toMatch(/true pneumonia.*predicted normal \(50\.0%\).*fold [01]/);
    await shot('run');

    await page.goto(`${dashboard.url}/?sort=name&order=asc`);
    await page.locator('table.runs tbody tr').nth(3).waitFor();
    await page.check('input[aria-label="select baseline small-vgg for comparison"]');
    await page.check('input[aria-label="select scratch alexnet for comparison"]');
    await page.click('text=Compare selected (2)');
    await page.waitForURL(/\/compare\?ids=/);
    await page.locator('table.config-diff').waitFor();
    const diffPaths = await page.locator('table.config-diff tbody th').allTextContents();
    expect(diffPaths).toEqual(expect.arrayContaining(['model.architecture', 'fineTune.freeze']));
    expect(diffPaths).not.toContain('dataset.imageSize');
    expect(await page.locator('.side-by-side svg g[aria-label=cell]').count()).toBe(2);
    await shot('compare');
    expect(pageErrors).toEqual([]);
  });

  it('sweeps → a sweep’s runs → compare the whole sweep', async () => {
    await page.goto(`${dashboard.url}/sweeps`);
    const row = page.locator('table.sweeps tbody tr');
    await row.first().waitFor();
    expect(await row.count()).toBe(1);
    expect(await row.first().textContent()).toMatch(/regime sweep.*succeeded.*2 planned: 2 succeeded/);
    await shot('sweeps');

    await row.first().getByRole('link', { name: 'runs' }).click();
    await page.waitForURL(new RegExp(`sweep=${runs.sweep}`));
    await expect.poll(rowNames).toEqual(['scratch alexnet', 'baseline small-vgg']);
    expect(await page.locator('select[name=sweep]').inputValue()).toBe(runs.sweep);
    expect(await page.locator('table.runs tbody tr td:nth-child(5)').allTextContents()).toEqual(['regime sweep #1', 'regime sweep #0']);

    await page.getByRole('link', { name: 'Compare the whole sweep' }).click();
    await page.waitForURL(`${dashboard.url}/sweeps/${runs.sweep}`);
    await page.locator('table.plan').waitFor();
    expect(await page.locator('table.plan tbody tr').count()).toBe(2);
    const diffPaths = await page.locator('table.config-diff:not(.plan) tbody th').allTextContents();
    expect(diffPaths).toEqual(expect.arrayContaining(['model.architecture', 'fineTune.freeze']));
    expect(await page.locator('table.metrics tbody tr').count()).toBe(2);
    expect(await page.locator('.side-by-side svg g[aria-label=cell]').count()).toBe(2);
    expect(await page.locator('svg g[aria-label=line] path').count()).toBeGreaterThanOrEqual(2);
    await shot('sweep-compare');
    expect(pageErrors).toEqual([]);
  });

  it('screens an image in the browser: the run’s preprocessing, probabilities matching detl predict within 1e-3, libs/ml’s Grad-CAM', async () => {
    const synthetic = path.join(work, 'fresh');
    await generateSyntheticDataset({ root: synthetic, seed: 99, imageSize: 96, dataB: { normal: 0, pneumonia: 0, other_disease: 0, covid: 1 }, dataA: { normal: 0, diseased: 0 } });
    const image = path.join(work, 'scan-covid.png');
    await copyFile(path.join(synthetic, 'covid', (await readdir(path.join(synthetic, 'covid'))).find((name) => name.endsWith('.png')) as string), image);
    const predicted = await runDetl(['predict', '--model', runs.baseline, '--json', '--no-gradcam', image], env);
    expect(predicted.stderr).not.toMatch(/detl: /);
    expect(predicted.code).toBe(0);
    const cli = JSON.parse(predicted.stdout) as { preprocessing: { imageSize: number }; predictions: { probabilities: Record<string, number>; perModel: unknown[] }[] };
    expect(cli.preprocessing.imageSize).toBe(SCREENING_IMAGE_SIZE);
    expect(cli.predictions[0]?.perModel).toHaveLength(5);

    await page.goto(`${dashboard.url}/runs/${runs.baseline}`);
    const file = page.locator('[data-testid=screening-file]');
    await file.waitFor({ state: 'attached' });
    // Bad files first: a clear message, and the page stays usable.
    const notAnImage = path.join(work, 'notes.png');
    await writeFile(notAnImage, 'this is not an image');
    await file.setInputFiles(notAnImage);
    await expect.poll(() => page.locator('.screening [role=alert]').textContent()).toMatch(/not a PNG or JPEG image/);
    const truncated = path.join(work, 'truncated.png');
    const bytes = await readFile(image);
    await writeFile(truncated, bytes.subarray(0, 60));
    await file.setInputFiles(truncated);
    await expect.poll(() => page.locator('.screening [role=alert]').textContent()).toMatch(/could not be decoded/);

    await file.setInputFiles(image);
    const cells = page.locator('td[data-probability]');
    await expect.poll(() => cells.count(), { timeout: 120_000 }).toBe(DATA_B_CLASSES.length);
    const browserProbabilities = Object.fromEntries(
      await cells.evaluateAll((nodes) => nodes.map((node) => [(node as unknown as { dataset: Record<string, string> }).dataset['class'], Number((node as unknown as { dataset: Record<string, string> }).dataset['probability'])])),
    ) as Record<string, number>;
    const expected = cli.predictions[0]?.probabilities ?? {};
    const differences = DATA_B_CLASSES.map((name) => Math.abs((browserProbabilities[name] ?? Number.NaN) - (expected[name] ?? Number.NaN)));
    console.info(`screening: browser ${JSON.stringify(browserProbabilities)} vs detl predict ${JSON.stringify(expected)}; max |difference| ${Math.max(...differences).toExponential(2)}`);
    for (const difference of differences) expect(difference).toBeLessThan(1e-3);

    // The network input the page made equals libs/data's (sharp) preprocessing of the same file.
    const sharpInput = await preprocessImage(bytes, { imageSize: SCREENING_IMAGE_SIZE, degradeToPixels: null });
    const drawn = await page.locator('[data-testid=screening-input]').evaluate((canvas) => {
      const element = canvas as unknown as { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } };
      const data = element.getContext('2d').getImageData(0, 0, element.width, element.height).data;
      return Array.from({ length: element.width * element.height }, (_, p) => data[p * 4] as number);
    });
    expect(drawn).toHaveLength(sharpInput.length);
    const pixelDifferences = drawn.map((value, p) => Math.abs(value - (sharpInput[p] as number)));
    console.info(`screening: network input vs sharp: max |difference| ${Math.max(...pixelDifferences)} grey levels, mean ${(pixelDifferences.reduce((a, b) => a + b, 0) / pixelDifferences.length).toFixed(3)}`);
    expect(Math.max(...pixelDifferences)).toBeLessThanOrEqual(2);
    // The page's Grad-CAM is libs/ml's ensemble map (what detl predict draws) of the same input and class,
    // computed on the page's backend: tfjs' wasm and cpu gradients differ by a few per cent on these
    // untrained nets (measured: heat sum 631.6 vs 651.0 for the same model and image in libs/ml alone).
    await initBackend('cpu');
    const models = await Promise.all([0, 1, 2, 3, 4].map((fold) => loadModelFromStore(store, `experiments/${runs.baseline}/folds/${fold}/final`)));
    // With the run's gradCam.method, which the page was told to use (grad-cam++, the default).
    const method = (await tracking.getExperiment(runs.baseline))?.config.gradCam.method;
    expect(method).toBe('grad-cam++');
    const explainers = models.map((model) => createGradCamExplainer(model, { method }));
    const predictedClass = DATA_B_CLASSES.indexOf(Object.entries(browserProbabilities).sort((a, b) => b[1] - a[1])[0]?.[0] as (typeof DATA_B_CLASSES)[number]);
    const reference = ensembleGradCam(explainers, Uint8Array.from(drawn), SCREENING_IMAGE_SIZE, predictedClass).heatmap;
    explainers.forEach((explainer) => explainer.dispose());
    models.forEach((model) => model.dispose());
    const overlay = page.locator('[data-testid=screening-overlay]');
    const heatSum = Number(await overlay.getAttribute('data-heat-sum'));
    const referenceSum = reference.reduce((sum, value) => sum + value, 0);
    console.info(`screening: Grad-CAM heat sum ${heatSum.toFixed(4)} in the page vs ${referenceSum.toFixed(4)} from libs/ml; peak ${await overlay.getAttribute('data-heat-peak')} vs ${reference.indexOf(1)}`);
    expect(Number(await overlay.getAttribute('data-heat-peak'))).toBe(reference.indexOf(1));
    expect(Math.abs(heatSum - referenceSum) / referenceSum).toBeLessThan(1e-3);
    // The overlay drew heat on the image.
    const overlayDiffers = await page.locator('[data-testid=screening-overlay]').evaluate((canvas) => {
      const element = canvas as unknown as { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } };
      const data = element.getContext('2d').getImageData(0, 0, element.width, element.height).data;
      let coloured = 0;
      for (let p = 0; p < element.width * element.height; p += 1) if (data[p * 4] !== data[p * 4 + 2]) coloured += 1;
      return coloured;
    });
    expect(overlayDiffers).toBeGreaterThan(0);
    await page.locator('.screening-result').scrollIntoViewIfNeeded();
    await shot('screen');
    expect(pageErrors).toEqual([]);
  }, 300_000);

  it('restores a shared view from the address and explains errors', async () => {
    await page.goto(`${dashboard.url}/?status=failed`);
    await expect.poll(rowNames).toEqual(['broken folder run']);
    expect(await page.locator('select[name=status]').inputValue()).toBe('failed');

    await page.goto(`${dashboard.url}/?q=no-such-run`);
    await page.getByText('No runs match these filters').waitFor();

    await page.goto(`${dashboard.url}/runs/00000000-0000-4000-8000-000000000000`);
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('no run 00000000-0000-4000-8000-000000000000');
    await shot('run-not-found');
  });
});
