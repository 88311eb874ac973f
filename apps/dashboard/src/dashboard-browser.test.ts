import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryObjectStore } from '@detl/storage/testing';
import { createRunHistoryQueries, createTrackingStore, type RunHistoryQueries, type TrackingStore } from '@detl/tracking';
import { createTestDatabase, type TestDatabase } from '@detl/tracking/testing';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureClientBuilt, startDashboard, type RunningDashboard } from './server/start-dashboard';
import { seedRuns, type SeededRuns } from './test-support/seed-runs';

const CHROMIUM = '/usr/bin/chromium';
/** Where each page's screenshot goes; a reviewed set is committed under apps/dashboard/screenshots/. */
const SCREENSHOT_DIR = process.env['DETL_DASHBOARD_SCREENSHOTS'] ?? path.resolve(__dirname, '../dist/screenshots');
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium; CI installs it)`);

describe.skipIf(!hasChromium)('dashboard in Chromium', () => {
  let database: TestDatabase;
  let tracking: TrackingStore;
  let queries: RunHistoryQueries;
  let runs: SeededRuns;
  let dashboard: RunningDashboard;
  let browser: BrowserContext;
  let page: Page;
  let profile: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await ensureClientBuilt();
    database = await createTestDatabase();
    tracking = createTrackingStore(database.url);
    queries = createRunHistoryQueries(database.url);
    const store = new MemoryObjectStore();
    runs = await seedRuns(tracking, store);
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
  });

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    await queries?.close();
    await tracking?.close();
    await database?.drop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const shot = (name: string) => page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
  const rowNames = () => page.locator('table.runs tbody tr td:nth-child(2) a').allTextContents();

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
    const images = page.locator('.gallery img');
    expect(await images.count()).toBe(4);
    await expect
      // The node types are the DOM's; this project type-checks against Node only.
      .poll(() => images.evaluateAll((nodes) => nodes.map((node) => (node as unknown as { complete: boolean; naturalWidth: number }).complete && (node as unknown as { naturalWidth: number }).naturalWidth)))
      .toEqual([64, 64, 64, 64]);
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
